"""BatchAPI jobs: submission, sources, the job store, the runner and the engine (in the Cortex endpoint)."""
