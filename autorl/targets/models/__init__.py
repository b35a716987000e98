"""Research-model targets: small real PyTorch implementations that train on CPU on offline data."""
