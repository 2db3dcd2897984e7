"""Cortex-M backend: static IREE library, HAL schedule extraction, C tables, firmware, QEMU."""
