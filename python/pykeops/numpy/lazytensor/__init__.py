"""pykeops.numpy.lazytensor: KeOps's package path of the LazyTensor module (pykeops.numpy.lazytensor.LazyTensor)."""
