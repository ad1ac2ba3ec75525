"""The compiler: parse -> check -> lower -> emit (see docs/layout.md)."""
