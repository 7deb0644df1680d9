"""The wire shared by the client and the server: TC3 verification, the envelope, error codes, actions."""
