"""Our edge to Asterisk: the AMI adapter, the FastAGI server, config rendering, the process runner."""
