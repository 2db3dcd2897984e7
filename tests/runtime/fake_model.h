/* A small model over the fake kernel library, for checkpoint tests and fuzzers.
 *
 * Trained state: p0 f32[4] at arena 0, p1 f32[2] at arena 64 (state_size 128).
 * train_step(p0, p1, x f32[1,4], label i32[1]) -> (p0 + 2 x, p1, loss = 1.0)
 * predict(p0, p1, x) -> logits f32[1,4] = p0 + x (4 classes).
 */
#ifndef TT_TEST_FAKE_MODEL_H_
#define TT_TEST_FAKE_MODEL_H_

#include "tt/model.h"

#define FAKE_MODEL_ARENA_SIZE 320u
#define FAKE_MODEL_STATE_SIZE 128u

extern const tt_model_desc_t fake_model_desc;
/* The same sizes and offsets, but p1 is f32[2,1]: another parameter layout (model identity). */
extern const tt_model_desc_t fake_model_desc_other;

#endif
