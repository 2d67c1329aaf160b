"""Type stubs of pykeops._engine, the pybind11 module of the C++ engine (bindings/*.cpp): keep them in step."""

from collections.abc import Sequence
from typing import Any


class Kernel:
    def run(
        self,
        ptrs: Sequence[int],
        nx: int,
        ny: int,
        outs: Sequence[int],
        batch: Sequence[int] = ...,
        arg_batch: Sequence[Sequence[int]] = ...,
        ranges: Sequence[int] = ...,
        range_counts: Sequence[int] = ...,
        range_sets: int = 1,
    ) -> None:
        ...
    @property
    def arg_cats(self) -> list[int]:
        ...
    @property
    def arg_dims(self) -> list[int]:
        ...
    @property
    def dim_out(self) -> int:
        ...
    @property
    def formula(self) -> str:
        ...
    @property
    def nargs(self) -> int:
        ...
    @property
    def num_instructions(self) -> int:
        ...
    @property
    def outputs(self) -> list[tuple[str, int]]:
        ...
    @property
    def reduction(self) -> str:
        ...
    @property
    def tag(self) -> int:
        ...

class GpuKernel:
    def compile(self, arch: int | str) -> int:
        ...
    def run(
        self,
        ptrs: Sequence[int],
        nx: int,
        ny: int,
        outs: Sequence[int],
        batch: Sequence[int] = ...,
        arg_batch: Sequence[Sequence[int]] = ...,
        ranges: Sequence[int] = ...,
        range_counts: Sequence[int] = ...,
        range_sets: int = 1,
        device: int = 0,
        stream: int = 0,
        scheme: str = 'auto',
    ) -> dict[str, Any]:
        ...
    @property
    def arg_cats(self) -> list[int]:
        ...
    @property
    def arg_dims(self) -> list[int]:
        ...
    @property
    def dim_out(self) -> int:
        ...
    @property
    def formula(self) -> str:
        ...
    @property
    def layout(self) -> dict[str, Any]:
        ...
    @property
    def nargs(self) -> int:
        ...
    @property
    def num_instructions(self) -> int:
        ...
    @property
    def outputs(self) -> list[tuple[str, int]]:
        ...
    @property
    def reduction(self) -> str:
        ...
    @property
    def source(self) -> str:
        ...
    @property
    def tag(self) -> int:
        ...

def cache_folder() -> str:
    ...

def cache_stats() -> dict[str, Any]:
    ...

def check_dtype_acc(reduction_op: str, dtype_acc: str, dtype: str = '', option: str = 'dtype_acc') -> str:
    ...

def check_sum_scheme(reduction_op: str, sum_scheme: str) -> str:
    ...

def chunk_bytes() -> int:
    ...

def clear_memory_cache() -> None:
    ...

def compile_phases(formula: str, aliases: Sequence[str], dtype: str = 'float32') -> list[tuple[str, float]]:
    ...

def cpu_backend_available() -> bool:
    ...

def data_ptrs(arrays: list[Any]) -> list[int]:
    ...

def formula_dim(formula: str, aliases: Sequence[str] = ...) -> int:
    ...

def get_gpu_kernel(
    formula: str,
    aliases: Sequence[str],
    dtype: str,
    dtype_acc: str = 'auto',
    sum_scheme: str = 'auto',
    use_fast_math: bool = True,
    enable_chunks: bool = True,
    block: int = 0,
) -> GpuKernel:
    ...

def get_kernel(
    formula: str,
    aliases: Sequence[str],
    dtype: str,
    dtype_acc: str = 'auto',
    sum_scheme: str = 'auto',
) -> Kernel:
    ...

def get_num_threads() -> int:
    ...

def gpu_alloc(device: int, nbytes: int) -> int:
    ...

def gpu_cache_stats() -> dict[str, Any]:
    ...

def gpu_clear_memory_cache() -> None:
    ...

def gpu_compile_check(
    formulas: str | Sequence[str],
    aliases: Sequence[str],
    dtype: str = 'float32',
    arch: int | str = 80,
    dtype_acc: str = 'auto',
    sum_scheme: str = 'auto',
    use_fast_math: bool = True,
    enable_chunks: bool = True,
    verbose: bool = True,
    cubin: bool = True,
) -> dict[str, Any]:
    ...

def gpu_device_info(device: int) -> dict[str, Any]:
    ...

def gpu_download(device: int, dst: int, src: int, nbytes: int) -> None:
    ...

def gpu_free(device: int, ptr: int) -> None:
    ...

def gpu_set_library_dirs(dirs: Sequence[str]) -> None:
    ...

def gpu_source(
    formula: str,
    aliases: Sequence[str],
    dtype: str = 'float32',
    dtype_acc: str = 'auto',
    sum_scheme: str = 'auto',
    use_fast_math: bool = True,
    enable_chunks: bool = True,
) -> str:
    ...

def gpu_status() -> dict[str, Any]:
    ...

def gpu_synchronize(device: int, stream: int = 0) -> None:
    ...

def gpu_upload(device: int, dst: int, src: int, nbytes: int) -> None:
    ...

def kernel_ir(
    formula: str,
    aliases: Sequence[str],
    dtype: str,
    dtype_acc: str = 'auto',
    sum_scheme: str = 'auto',
) -> str:
    ...

def jax_ffi_handler() -> Any:
    """The XLA FFI handler (a PyCapsule) of pykeops.jax's custom calls; only in builds that found jaxlib."""
    ...

def jax_kernel_handle(kernel: Kernel) -> int:
    """The handle a custom call names a CPU kernel by (the kernel is then kept alive); only with jax_ffi_handler."""
    ...

def last_lookup() -> str:
    ...

def linked_objects() -> int:
    ...

def operations() -> list[dict[str, Any]]:
    ...

def parse(formula: str, aliases: Sequence[str] = ...) -> str:
    ...

def reduction_ops() -> list[dict[str, Any]]:
    ...

def reduction_signature(reduction: str, aliases: Sequence[str] = ...) -> dict[str, Any]:
    ...

def reductions() -> list[dict[str, Any]]:
    ...

def set_cache_folder(path: str) -> None:
    ...

def set_chunk_bytes(n: int) -> None:
    ...

def set_num_threads(n: int) -> None:
    ...
