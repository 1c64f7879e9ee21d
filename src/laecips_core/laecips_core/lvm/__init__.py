"""The large vision model SAM(x) behind a protocol and a registry: class-agnostic masks for Algorithm 1."""
