"""The control plane: `api/` is the wire (one module per resource, one pipeline for every action),
`backend/` the state and rules it calls."""
