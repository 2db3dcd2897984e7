/* Fake IREE static library with the v6 layout; kernels check their dispatch state. */
#include "fake_library.h"

#include <stddef.h>

int fake_calls;

static int fake_vadd(const tt_iree_environment_t* env, const tt_iree_dispatch_state_t* ds,
                     const tt_iree_workgroup_state_t* wg) {
  (void)env;
  ++fake_calls;
  if (ds->binding_count != 3u || ds->constant_count != 1u || ds->max_concurrency != 1u) return 1;
  if (((uintptr_t)ds & 15u) || ((uintptr_t)wg & 15u)) return 2;
  uint32_t n = ds->constants[0];
  uint32_t first = wg->workgroup_id_x * n;
  for (int b = 0; b < 3; ++b) {
    if ((first + n) * sizeof(float) > ds->binding_lengths[b]) return 3;
  }
  const float* a = (const float*)ds->binding_ptrs[0];
  const float* b = (const float*)ds->binding_ptrs[1];
  float* out = (float*)ds->binding_ptrs[2];
  for (uint32_t i = first; i < first + n; ++i) out[i] = a[i] + b[i];
  return 0;
}

static int fake_axpy2(const tt_iree_environment_t* env, const tt_iree_dispatch_state_t* ds,
                      const tt_iree_workgroup_state_t* wg) {
  (void)env;
  (void)wg;
  ++fake_calls;
  if (ds->binding_count != 2u || ds->workgroup_count_x != 1u) return 1;
  const float* x = (const float*)ds->binding_ptrs[0];
  float* y = (float*)ds->binding_ptrs[1];
  size_t n = ds->binding_lengths[1] < ds->binding_lengths[0] ? ds->binding_lengths[1]
                                                              : ds->binding_lengths[0];
  for (size_t i = 0; i < n / sizeof(float); ++i) y[i] += 2.0f * x[i];
  return 0;
}

static int fake_fail(const tt_iree_environment_t* env, const tt_iree_dispatch_state_t* ds,
                     const tt_iree_workgroup_state_t* wg) {
  (void)env;
  (void)ds;
  (void)wg;
  ++fake_calls;
  return -1;
}

static const tt_iree_kernel_fn_t fake_ptrs[3] = {fake_vadd, fake_axpy2, fake_fail};
static const char* const fake_names[3] = {"vadd", "axpy2", "fail"};
static const tt_iree_dispatch_attrs_t fake_attrs[3] = {
    {0u, 0u, 1u, 3u, 1u, 1u, 1u, 0u, {0u, 0u, 0u, 0u, 0u}},
    {0u, 0u, 0u, 2u, 1u, 1u, 1u, 0u, {0u, 0u, 0u, 0u, 0u}},
    {0u, 0u, 0u, 1u, 1u, 1u, 1u, 0u, {0u, 0u, 0u, 0u, 0u}},
};
static const tt_iree_library_header_t fake_header = {6u, "fake_linked", 0u, 0};
static const tt_iree_library_header_t fake_header_v5 = {5u, "fake_linked", 0u, 0};

static const tt_iree_library_t fake_library = {
    &fake_header, {0u, NULL},
    {3u, fake_ptrs, fake_attrs, NULL, NULL, fake_names, NULL, NULL, NULL, NULL},
    {0u}, {0u, NULL}};
static const tt_iree_library_t fake_library_v5 = {
    &fake_header_v5, {0u, NULL},
    {3u, fake_ptrs, fake_attrs, NULL, NULL, fake_names, NULL, NULL, NULL, NULL},
    {0u}, {0u, NULL}};

const tt_iree_library_header_t** fake_linked_library_query(uint32_t max_version,
                                                          const tt_iree_environment_t* env) {
  (void)env;
  return max_version == 6u ? (const tt_iree_library_header_t**)&fake_library : NULL;
}

const tt_iree_library_header_t** fake_v5_library_query(uint32_t max_version,
                                                      const tt_iree_environment_t* env) {
  (void)env;
  (void)max_version;
  return (const tt_iree_library_header_t**)&fake_library_v5;
}
