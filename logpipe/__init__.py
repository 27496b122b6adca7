"""logpipe: a streaming log-analysis pipeline on Ray (the system under test)."""
