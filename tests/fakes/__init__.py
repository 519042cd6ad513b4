"""Local stand-ins for outside services that tests cannot reach."""
