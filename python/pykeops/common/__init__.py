"""Framework-independent core of pykeops: engine loading, Genred and LazyTensor logic, array adapters."""
