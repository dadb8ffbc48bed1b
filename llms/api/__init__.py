"""Client-facing APIs: each module translates one API's requests and events; pure, no I/O."""
