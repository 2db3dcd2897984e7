"""Host backend: iree-compile for llvm-cpu and the iree.runtime session that runs the .vmfb."""
