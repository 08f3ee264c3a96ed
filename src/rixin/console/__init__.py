"""The web console: static pages (vanilla ES modules, inline SVG charts) served by the gateway.
Every call the page makes goes through the public API with the key the user typed."""
