"""Our own PyTorch modules for the GPT-SoVITS v2 inference path (written from the facts, not copied)."""
