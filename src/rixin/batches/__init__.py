"""OpenAI's Batch API: a JSONL file of requests answered as a resumable, low-priority job."""
