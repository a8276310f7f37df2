"""The timeline: rules × records → the plan of dispatches, with stable ids; cron expressions."""
