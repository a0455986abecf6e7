"""Case tickets (工单): the model, its state machine and deadlines, and the Redis store."""
