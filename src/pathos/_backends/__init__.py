"""The engines behind the pools: serial (inline), thread, process and dask."""
