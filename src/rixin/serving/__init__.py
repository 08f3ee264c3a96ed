"""The serving room: which model a request runs on (deployments), the engine replicas that
run it (pool, replicas) and the one engine client (client: async for the gateway, sync for job
code, one retry policy). Above engines/, below jobs/ and every domain room that calls models."""
