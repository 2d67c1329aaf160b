"""pykeops.torch.lazytensor: KeOps's package path of the LazyTensor module (pykeops.torch.lazytensor.LazyTensor)."""
