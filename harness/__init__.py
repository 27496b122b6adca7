"""harness: scenarios, runner, results and statistics for benchmarking logpipe."""
