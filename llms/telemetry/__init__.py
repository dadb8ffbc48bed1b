"""What the gateway did: one record per request, handed to the telemetry sinks at its end."""
