/* IREE executable-library ABI, version 6 (iree-base-compiler 3.13), as used by the runtime.
 *
 * Our own declaration of the layout that iree-compile emits for `--iree-llvmcpu-link-static`
 * libraries (measured from the LLVM IR it dumps; see lowering/abi_check.py, which re-checks the
 * compiler's output against the same field lists on every build). The compile-time checks below pin
 * the layout for both ILP32 (Cortex-M) and LP64 (host tests): a mismatch fails the build.
 */
#ifndef TT_IREE_ABI_H_
#define TT_IREE_ABI_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** The only library version the runtime accepts; `<lib>_library_query` wants exactly this. */
#define TT_IREE_ABI_VERSION 6u

typedef struct tt_iree_library_header_t {
  uint32_t version;
  const char* name;
  uint32_t features;
  int32_t sanitizer;
} tt_iree_library_header_t;

typedef struct tt_iree_environment_t {
  const uint32_t* constants;
  void* import_thunk;
  const void* const* import_funcs;
  void* const* import_contexts;
  uint64_t processor_data[8];
} tt_iree_environment_t;

typedef struct tt_iree_dispatch_state_t {
  uint32_t workgroup_size_x;
  uint32_t workgroup_size_y;
  uint16_t workgroup_size_z;
  uint16_t constant_count;
  uint32_t workgroup_count_x;
  uint32_t workgroup_count_y;
  uint16_t workgroup_count_z;
  uint8_t max_concurrency;
  uint8_t binding_count;
  const uint32_t* constants;
  void* const* binding_ptrs;
  const size_t* binding_lengths;
} tt_iree_dispatch_state_t;

typedef struct tt_iree_workgroup_state_t {
  uint32_t workgroup_id_x;
  uint32_t workgroup_id_y;
  uint16_t workgroup_id_z;
  uint16_t reserved;
  uint32_t processor_id;
  void* local_memory;
  uint32_t local_memory_size;
} tt_iree_workgroup_state_t;

typedef struct tt_iree_dispatch_attrs_t {
  uint64_t flags;
  uint16_t local_memory_pages;
  uint8_t constant_count;
  uint8_t binding_count;
  uint32_t workgroup_size_x;
  uint32_t workgroup_size_y;
  uint16_t workgroup_size_z;
  uint16_t parameter_count;
  uint64_t reserved[5];
} tt_iree_dispatch_attrs_t;

/** Kernel entry point: returns 0 on success. All three structs must be 16-byte aligned. */
typedef int (*tt_iree_kernel_fn_t)(const tt_iree_environment_t* environment,
                                   const tt_iree_dispatch_state_t* dispatch_state,
                                   const tt_iree_workgroup_state_t* workgroup_state);

typedef struct tt_iree_export_table_t {
  uint32_t count;
  const tt_iree_kernel_fn_t* ptrs;
  const tt_iree_dispatch_attrs_t* attrs;
  const void* params;
  const void* occupancy;
  const char* const* names;
  const void* tags;
  const void* parameter_names;
  const void* source_locations;
  const void* stage_locations;
} tt_iree_export_table_t;

typedef struct tt_iree_library_t {
  const tt_iree_library_header_t* header;
  struct { uint32_t count; const char* const* symbols; } imports;
  tt_iree_export_table_t exports;
  struct { uint32_t count; } constants;
  struct { uint32_t count; const void* files; } sources;
} tt_iree_library_t;

/** `<lib>_library_query`: returns a pointer to the library (whose first member is the header). */
typedef const tt_iree_library_header_t** (*tt_iree_query_fn_t)(
    uint32_t max_version, const tt_iree_environment_t* environment);

/* C99 compile-time check: a negative array size fails the build; `msg` names the field. */
#define TT_ABI_CAT2_(a, b) a##b
#define TT_ABI_CAT_(a, b) TT_ABI_CAT2_(a, b)
#define TT_ABI_CHECK_(cond, msg) \
  typedef char TT_ABI_CAT_(tt_iree_abi_v6_layout_check_, __LINE__)[(cond) ? 1 : -1]

/* Alignment the kernels assume for their three argument structs (`align 16` in the IR). */
#if defined(__GNUC__) || defined(__clang__)
#define TT_ALIGNED(n) __attribute__((aligned(n)))
#else
#error "tinytrain runtime needs __attribute__((aligned)) (GCC or Clang)"
#endif
#define TT_PTR_ (sizeof(void*))
#if UINTPTR_MAX == 0xFFFFFFFFu
TT_ABI_CHECK_(sizeof(tt_iree_library_header_t) == 16, "header size (ILP32)");
TT_ABI_CHECK_(offsetof(tt_iree_environment_t, processor_data) == 16, "environment layout (ILP32)");
TT_ABI_CHECK_(sizeof(tt_iree_environment_t) == 80, "environment size (ILP32)");
TT_ABI_CHECK_(offsetof(tt_iree_dispatch_state_t, binding_ptrs) == 28, "dispatch_state (ILP32)");
TT_ABI_CHECK_(sizeof(tt_iree_dispatch_state_t) == 36, "dispatch_state size (ILP32)");
TT_ABI_CHECK_(sizeof(tt_iree_workgroup_state_t) == 24, "workgroup_state size (ILP32)");
TT_ABI_CHECK_(sizeof(tt_iree_export_table_t) == 40, "export table size (ILP32)");
TT_ABI_CHECK_(offsetof(tt_iree_library_t, exports) == 12, "library layout (ILP32)");
TT_ABI_CHECK_(sizeof(tt_iree_library_t) == 64, "library size (ILP32)");
#else
TT_ABI_CHECK_(sizeof(tt_iree_library_header_t) == 24, "header size (LP64)");
TT_ABI_CHECK_(offsetof(tt_iree_environment_t, processor_data) == 32, "environment layout (LP64)");
TT_ABI_CHECK_(sizeof(tt_iree_environment_t) == 96, "environment size (LP64)");
TT_ABI_CHECK_(offsetof(tt_iree_dispatch_state_t, binding_ptrs) == 32, "dispatch_state (LP64)");
TT_ABI_CHECK_(sizeof(tt_iree_dispatch_state_t) == 48, "dispatch_state size (LP64)");
TT_ABI_CHECK_(sizeof(tt_iree_workgroup_state_t) == 32, "workgroup_state size (LP64)");
TT_ABI_CHECK_(sizeof(tt_iree_export_table_t) == 80, "export table size (LP64)");
TT_ABI_CHECK_(offsetof(tt_iree_library_t, exports) == 24, "library layout (LP64)");
TT_ABI_CHECK_(sizeof(tt_iree_library_t) == 128, "library size (LP64)");
#endif
TT_ABI_CHECK_(offsetof(tt_iree_dispatch_state_t, workgroup_count_x) == 12, "workgroup_count_x");
TT_ABI_CHECK_(offsetof(tt_iree_dispatch_state_t, max_concurrency) == 22, "max_concurrency");
TT_ABI_CHECK_(offsetof(tt_iree_dispatch_state_t, binding_count) == 23, "binding_count");
TT_ABI_CHECK_(offsetof(tt_iree_dispatch_state_t, constants) == 24, "constants");
TT_ABI_CHECK_(offsetof(tt_iree_workgroup_state_t, processor_id) == 12, "processor_id");
TT_ABI_CHECK_(offsetof(tt_iree_workgroup_state_t, local_memory) == 16, "local_memory");
TT_ABI_CHECK_(sizeof(tt_iree_dispatch_attrs_t) == 64, "dispatch_attrs size");
TT_ABI_CHECK_(offsetof(tt_iree_dispatch_attrs_t, binding_count) == 11, "attrs.binding_count");
TT_ABI_CHECK_(offsetof(tt_iree_dispatch_attrs_t, parameter_count) == 22, "attrs.parameter_count");
TT_ABI_CHECK_(offsetof(tt_iree_export_table_t, ptrs) == TT_PTR_, "exports.ptrs");
TT_ABI_CHECK_(offsetof(tt_iree_export_table_t, names) == 5 * TT_PTR_, "exports.names");

#ifdef __cplusplus
}
#endif

#endif /* TT_IREE_ABI_H_ */
