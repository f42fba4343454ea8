"""What runs the operator on a platform: the launchd agent, the container health check."""
