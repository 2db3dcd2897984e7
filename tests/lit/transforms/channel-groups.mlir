// channel-groups: the backward chain of a depthwise layer (1x1 input gradient to 16 channels,
// clamp mask, transposed depthwise conv, clamp mask) runs in groups of channels; the 1x1 input
// gradient after it becomes a sum of per-group partial gradients (each added to the running sum
// by conv2d_grad_input_acc, in its storage after lowering), the bias gradient a concat of
// per-group sums, the depthwise weight gradient a concat of per-group ones; each group waits for
// the previous one (util.optimization_barrier). Weights are sliced before their dequantization.
// RUN: tinytrain-opt -p 'channel-groups{groups=2 min_bytes=0}' %s | filecheck %s
// RUN: tinytrain-opt -p 'channel-groups{groups=4 min_bytes=0}' %s | filecheck %s --check-prefix=FOUR
// RUN: tinytrain-opt -p 'channel-groups{groups=2 min_bytes=4096}' %s | filecheck %s --check-prefix=SMALL
// RUN: not tinytrain-opt -p 'channel-groups{groups=0}' %s 2>&1 | filecheck %s --check-prefix=BAD
// CHECK-LABEL: func.func @backward(
// CHECK-SAME: tinytrain.channel_groups = [{channels = 16 : i64, groups = 2 : i64
// CHECK-NOT: "tinytrain.channel_scale"(%arg1) {{.*}} -> tensor<1x1x16x8xf32>
// CHECK: %[[WP0:.*]] = "tinytrain.slice"(%arg1) {offsets = array<i64: 0, 0, 0, 0>} : (tensor<1x1x16x8xi8>) -> tensor<1x1x8x8xi8>
// CHECK: %[[SP0:.*]] = "tinytrain.channel_scale"(%[[WP0]])
// CHECK: %[[A0:.*]] = "tinytrain.conv2d_grad_input"(%arg0, %[[SP0]]) {{.*}} -> tensor<1x4x4x8xf32>
// CHECK: %[[Y0:.*]] = "tinytrain.slice"(%arg3) {offsets = array<i64: 0, 0, 0, 0>} : (tensor<1x4x4x16xi8>) -> tensor<1x4x4x8xi8>
// CHECK: %[[B0:.*]] = "tinytrain.qclamp_grad"(%[[A0]], %[[Y0]])
// CHECK: "tinytrain.conv2d_grad_input"(%[[B0]], {{.*}}) {groups = 8 : i64, padding = array<i64: 1, 1>
// CHECK: "tinytrain.conv2d_grad_weight"({{.*}}) {groups = 8 : i64{{.*}} -> tensor<3x3x1x8xf32>
// CHECK: %[[P0:.*]] = "tinytrain.conv2d_grad_input"({{.*}}) {groups = 1 : i64{{.*}} -> tensor<1x4x4x4xf32>
// CHECK: %[[BAR:.*]]:{{[0-9]+}} = "util.optimization_barrier"(%arg0, {{.*}}, %[[P0]])
// CHECK: "tinytrain.slice"(%arg1) {offsets = array<i64: 0, 0, 8, 0>}
// CHECK: "tinytrain.conv2d_grad_input"(%[[BAR]]#0,
// CHECK: "tinytrain.conv2d_grad_input_acc"(%[[BAR]]#3, {{.*}}) {groups = 1 : i64{{.*}} -> tensor<1x4x4x4xf32>
// CHECK-NOT: "tinytrain.add"
// CHECK: "tinytrain.concat"({{.*}}) {axis = 3 : i64} : (tensor<3x3x1x8xf32>, tensor<3x3x1x8xf32>) -> tensor<3x3x1x16xf32>
// CHECK: "tinytrain.concat"({{.*}}) {axis = 0 : i64} : (tensor<8xf32>, tensor<8xf32>) -> tensor<16xf32>
// CHECK-NOT: tensor<1x4x4x16xf32>
// CHECK: return
// FOUR: tinytrain.channel_groups = [{channels = 16 : i64, groups = 4 : i64
// FOUR-COUNT-3: "util.optimization_barrier"
// SMALL-NOT: channel_groups
// SMALL: "tinytrain.conv2d_grad_input"(%arg0, {{.*}}) -> tensor<1x4x4x16xf32>
// BAD: channel-groups: groups must be >= 1
func.func @backward(%g: tensor<1x4x4x8xf32>, %wp: tensor<1x1x16x8xi8>, %wd: tensor<3x3x1x16xi8>,
                    %ydw: tensor<1x4x4x16xi8>, %yexp: tensor<1x4x4x16xi8>, %we: tensor<1x1x4x16xf32>,
                    %xexp: tensor<1x4x4x16xf32>)
    -> (tensor<1x4x4x4xf32>, tensor<16xf32>, tensor<3x3x1x16xf32>) {
  %sp = "tinytrain.channel_scale"(%wp) {scales = array<f64: 1.0, 2.0, 1.0, 2.0, 1.0, 2.0, 1.0, 2.0>} : (tensor<1x1x16x8xi8>) -> tensor<1x1x16x8xf32>
  %a = "tinytrain.conv2d_grad_input"(%g, %sp) {groups = 1 : i64, padding = array<i64: 0, 0>, strides = array<i64: 1, 1>} : (tensor<1x4x4x8xf32>, tensor<1x1x16x8xf32>) -> tensor<1x4x4x16xf32>
  %b = "tinytrain.qclamp_grad"(%a, %ydw) {clamp = array<i64: -128, 127>} : (tensor<1x4x4x16xf32>, tensor<1x4x4x16xi8>) -> tensor<1x4x4x16xf32>
  %db = "tinytrain.bias_grad"(%b) : (tensor<1x4x4x16xf32>) -> tensor<16xf32>
  %dwgrad = "tinytrain.conv2d_grad_weight"(%xexp, %b) {groups = 16 : i64, padding = array<i64: 1, 1>, strides = array<i64: 1, 1>} : (tensor<1x4x4x16xf32>, tensor<1x4x4x16xf32>) -> tensor<3x3x1x16xf32>
  %sd = "tinytrain.channel_scale"(%wd) {scales = array<f64: 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0>} : (tensor<3x3x1x16xi8>) -> tensor<3x3x1x16xf32>
  %d = "tinytrain.conv2d_grad_input"(%b, %sd) {groups = 16 : i64, padding = array<i64: 1, 1>, strides = array<i64: 1, 1>} : (tensor<1x4x4x16xf32>, tensor<3x3x1x16xf32>) -> tensor<1x4x4x16xf32>
  %e = "tinytrain.qclamp_grad"(%d, %yexp) {clamp = array<i64: 0, 127>} : (tensor<1x4x4x16xf32>, tensor<1x4x4x16xi8>) -> tensor<1x4x4x16xf32>
  %f = "tinytrain.conv2d_grad_input"(%e, %we) {groups = 1 : i64, padding = array<i64: 0, 0>, strides = array<i64: 1, 1>} : (tensor<1x4x4x16xf32>, tensor<1x1x4x16xf32>) -> tensor<1x4x4x4xf32>
  return %f, %db, %dwgrad : tensor<1x4x4x4xf32>, tensor<16xf32>, tensor<3x3x1x16xf32>
}

// A trained expansion weight (its gradient feeds only its SGD update): each group's update is
// inserted into the parameter (tinytrain.insert, in place after lowering), and the next group
// reads its weight columns from the partly updated value, which orders it after the update; the
// insert chain is not carried by the barrier (its storage is the argument's).
// RUN: tinytrain-opt -p 'channel-groups{groups=2 min_bytes=0}' %s | filecheck %s --check-prefix=UPD
// UPD-LABEL: func.func @update(
// UPD: "tinytrain.slice"(%arg4) {offsets = array<i64: 0, 0, 0, 0>} : (tensor<1x1x4x16xi8>) -> tensor<1x1x4x8xi8>
// UPD: %[[U0:.*]] = "tinytrain.qsgd_update"({{.*}}, %arg6)
// UPD: %[[I0:.*]] = "tinytrain.insert"(%arg4, %[[U0]]) {offsets = array<i64: 0, 0, 0, 0>}
// UPD: "util.optimization_barrier"(%arg0, {{.*}}) : (tensor<1x4x4x8xf32>, tensor<1x4x4x4xf32>) ->
// UPD-NOT: "tinytrain.slice"(%arg4)
// UPD: "tinytrain.slice"(%[[I0]]) {offsets = array<i64: 0, 0, 0, 8>} : (tensor<1x1x4x16xi8>) -> tensor<1x1x4x8xi8>
// UPD: %[[U1:.*]] = "tinytrain.qsgd_update"({{.*}}, %arg6)
// UPD: %[[I1:.*]] = "tinytrain.insert"(%[[I0]], %[[U1]]) {offsets = array<i64: 0, 0, 0, 8>}
// UPD-NOT: "tinytrain.concat"
// UPD: return {{.*}}, %[[I1]] :
func.func @update(%g: tensor<1x4x4x8xf32>, %wp: tensor<1x1x16x8xi8>, %wd: tensor<3x3x1x16xi8>,
                  %ydw: tensor<1x4x4x16xi8>, %we: tensor<1x1x4x16xi8>, %xexp: tensor<1x4x4x4xf32>,
                  %loss: tensor<f32>) -> (tensor<1x4x4x4xf32>, tensor<1x1x4x16xi8>) {
  %sp = "tinytrain.channel_scale"(%wp) {scales = array<f64: 1.0, 2.0, 1.0, 2.0, 1.0, 2.0, 1.0, 2.0>} : (tensor<1x1x16x8xi8>) -> tensor<1x1x16x8xf32>
  %a = "tinytrain.conv2d_grad_input"(%g, %sp) {groups = 1 : i64, padding = array<i64: 0, 0>, strides = array<i64: 1, 1>} : (tensor<1x4x4x8xf32>, tensor<1x1x16x8xf32>) -> tensor<1x4x4x16xf32>
  %b = "tinytrain.qclamp_grad"(%a, %ydw) {clamp = array<i64: -128, 127>} : (tensor<1x4x4x16xf32>, tensor<1x4x4x16xi8>) -> tensor<1x4x4x16xf32>
  %sd = "tinytrain.channel_scale"(%wd) {scales = array<f64: 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0>} : (tensor<3x3x1x16xi8>) -> tensor<3x3x1x16xf32>
  %d = "tinytrain.conv2d_grad_input"(%b, %sd) {groups = 16 : i64, padding = array<i64: 1, 1>, strides = array<i64: 1, 1>} : (tensor<1x4x4x16xf32>, tensor<3x3x1x16xf32>) -> tensor<1x4x4x16xf32>
  %se = "tinytrain.channel_scale"(%we) {scales = array<f64: 1.0, 2.0, 1.0, 2.0, 1.0, 2.0, 1.0, 2.0, 1.0, 2.0, 1.0, 2.0, 1.0, 2.0, 1.0, 2.0>} : (tensor<1x1x4x16xi8>) -> tensor<1x1x4x16xf32>
  %f = "tinytrain.conv2d_grad_input"(%d, %se) {groups = 1 : i64, padding = array<i64: 0, 0>, strides = array<i64: 1, 1>} : (tensor<1x4x4x16xf32>, tensor<1x1x4x16xf32>) -> tensor<1x4x4x4xf32>
  %gw = "tinytrain.conv2d_grad_weight"(%xexp, %d) {groups = 1 : i64, padding = array<i64: 0, 0>, strides = array<i64: 1, 1>} : (tensor<1x4x4x4xf32>, tensor<1x4x4x16xf32>) -> tensor<1x1x4x16xf32>
  %gs = "tinytrain.channel_scale"(%gw) {scales = array<f64: 1.0, 2.0, 1.0, 2.0, 1.0, 2.0, 1.0, 2.0, 1.0, 2.0, 1.0, 2.0, 1.0, 2.0, 1.0, 2.0>} : (tensor<1x1x4x16xf32>) -> tensor<1x1x4x16xf32>
  %nw = "tinytrain.qsgd_update"(%we, %gs, %loss) {lr = 0.5 : f32} : (tensor<1x1x4x16xi8>, tensor<1x1x4x16xf32>, tensor<f32>) -> tensor<1x1x4x16xi8>
  return %f, %nw : tensor<1x4x4x4xf32>, tensor<1x1x4x16xi8>
}

// A projection `sparse-split` cut in two (trained 2 output channels, frozen 6): its input gradient
// is the add of the two parts' partial gradients. The add seeds the region: each group computes
// both parts with their weights' rows of its channels and adds them; no whole 16-channel gradient.
// RUN: tinytrain-opt -p 'channel-groups{groups=2 min_bytes=0}' %s | filecheck %s --check-prefix=SUM
// SUM-LABEL: func.func @split_sum(
// SUM-SAME: tinytrain.channel_groups = [{channels = 16 : i64, groups = 2 : i64
// SUM: %[[T0:.*]] = "tinytrain.slice"(%arg1) {offsets = array<i64: 0, 0, 0, 0>} : (tensor<1x1x16x2xi8>) -> tensor<1x1x8x2xi8>
// SUM: "tinytrain.conv2d_grad_input"(%arg0, {{.*}}) {{.*}} -> tensor<1x4x4x8xf32>
// SUM: %[[F0:.*]] = "tinytrain.slice"(%arg2) {offsets = array<i64: 0, 0, 0, 0>} : (tensor<1x1x16x6xi8>) -> tensor<1x1x8x6xi8>
// SUM: "tinytrain.conv2d_grad_input_acc"({{.*}}, %arg3, {{.*}}) {{.*}} -> tensor<1x4x4x8xf32>
// SUM-NOT: "tinytrain.add"
// SUM: "util.optimization_barrier"(%arg0, %arg3,
// SUM: "tinytrain.slice"(%arg1) {offsets = array<i64: 0, 0, 8, 0>}
// SUM: "tinytrain.slice"(%arg2) {offsets = array<i64: 0, 0, 8, 0>}
// SUM-NOT: tensor<1x4x4x16xf32>
// SUM: return
func.func @split_sum(%ga: tensor<1x4x4x2xf32>, %wa: tensor<1x1x16x2xi8>, %wb: tensor<1x1x16x6xi8>,
                     %gb: tensor<1x4x4x6xf32>, %wd: tensor<3x3x1x16xi8>, %ydw: tensor<1x4x4x16xi8>,
                     %we: tensor<1x1x4x16xf32>) -> tensor<1x4x4x4xf32> {
  %sa = "tinytrain.channel_scale"(%wa) {scales = array<f64: 1.0, 2.0>} : (tensor<1x1x16x2xi8>) -> tensor<1x1x16x2xf32>
  %sb = "tinytrain.channel_scale"(%wb) {scales = array<f64: 1.0, 2.0, 1.0, 2.0, 1.0, 2.0>} : (tensor<1x1x16x6xi8>) -> tensor<1x1x16x6xf32>
  %pa = "tinytrain.conv2d_grad_input"(%ga, %sa) {groups = 1 : i64, padding = array<i64: 0, 0>, strides = array<i64: 1, 1>} : (tensor<1x4x4x2xf32>, tensor<1x1x16x2xf32>) -> tensor<1x4x4x16xf32>
  %pb = "tinytrain.conv2d_grad_input"(%gb, %sb) {groups = 1 : i64, padding = array<i64: 0, 0>, strides = array<i64: 1, 1>} : (tensor<1x4x4x6xf32>, tensor<1x1x16x6xf32>) -> tensor<1x4x4x16xf32>
  %a = "tinytrain.add"(%pa, %pb) : (tensor<1x4x4x16xf32>, tensor<1x4x4x16xf32>) -> tensor<1x4x4x16xf32>
  %b = "tinytrain.qclamp_grad"(%a, %ydw) {clamp = array<i64: -128, 127>} : (tensor<1x4x4x16xf32>, tensor<1x4x4x16xi8>) -> tensor<1x4x4x16xf32>
  %sd = "tinytrain.channel_scale"(%wd) {scales = array<f64: 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0>} : (tensor<3x3x1x16xi8>) -> tensor<3x3x1x16xf32>
  %d = "tinytrain.conv2d_grad_input"(%b, %sd) {groups = 16 : i64, padding = array<i64: 1, 1>, strides = array<i64: 1, 1>} : (tensor<1x4x4x16xf32>, tensor<3x3x1x16xf32>) -> tensor<1x4x4x16xf32>
  %f = "tinytrain.conv2d_grad_input"(%d, %we) {groups = 1 : i64, padding = array<i64: 0, 0>, strides = array<i64: 1, 1>} : (tensor<1x4x4x16xf32>, tensor<1x1x4x16xf32>) -> tensor<1x4x4x4xf32>
  return %f : tensor<1x4x4x4xf32>
}

// A trained int32 bias (its gradient feeds only its SGD update, through the QAS scalings): each
// group's bias gradient updates the bias's channels at once (their scales sliced) and is inserted
// into the parameter, as a trained weight is; no per-group gradient waits for a concat.
// RUN: tinytrain-opt -p 'channel-groups{groups=2 min_bytes=0 bias_updates=1}' %s | filecheck %s --check-prefix=BIAS
// BIAS-LABEL: func.func @bias_update(
// BIAS: %[[G0:.*]] = "tinytrain.bias_grad"({{.*}}) : (tensor<1x4x4x8xf32>) -> tensor<8xf32>
// BIAS: %[[S0:.*]] = "tinytrain.channel_scale"(%[[G0]]) {scales = array<f64: 1.000000e+00, 2.000000e+00, 3.000000e+00, 4.000000e+00, 5.000000e+00, 6.000000e+00, 7.000000e+00, 8.000000e+00>}
// BIAS: %[[P0:.*]] = "tinytrain.slice"(%arg4) {offsets = array<i64: 0>} : (tensor<16xi32>) -> tensor<8xi32>
// BIAS: %[[U0:.*]] = "tinytrain.qsgd_update"(%[[P0]], %[[S0]], %arg6)
// BIAS: %[[I0:.*]] = "tinytrain.insert"(%arg4, %[[U0]]) {offsets = array<i64: 0>}
// BIAS: "util.optimization_barrier"
// BIAS: %[[G1:.*]] = "tinytrain.bias_grad"({{.*}}) : (tensor<1x4x4x8xf32>) -> tensor<8xf32>
// BIAS: %[[S1:.*]] = "tinytrain.channel_scale"(%[[G1]]) {scales = array<f64: 9.000000e+00, 1.000000e+01,
// BIAS: %[[P1:.*]] = "tinytrain.slice"(%[[I0]]) {offsets = array<i64: 8>} : (tensor<16xi32>) -> tensor<8xi32>
// BIAS: %[[U1:.*]] = "tinytrain.qsgd_update"(%[[P1]], %[[S1]], %arg6)
// BIAS: %[[I1:.*]] = "tinytrain.insert"(%[[I0]], %[[U1]]) {offsets = array<i64: 8>}
// BIAS-NOT: "tinytrain.concat"
// BIAS: return {{.*}}, %[[I1]] :
func.func @bias_update(%g: tensor<1x4x4x8xf32>, %wp: tensor<1x1x16x8xi8>, %wd: tensor<3x3x1x16xi8>,
                       %ydw: tensor<1x4x4x16xi8>, %bias: tensor<16xi32>, %we: tensor<1x1x4x16xf32>,
                       %loss: tensor<f32>) -> (tensor<1x4x4x4xf32>, tensor<16xi32>) {
  %sp = "tinytrain.channel_scale"(%wp) {scales = array<f64: 1.0, 2.0, 1.0, 2.0, 1.0, 2.0, 1.0, 2.0>} : (tensor<1x1x16x8xi8>) -> tensor<1x1x16x8xf32>
  %a = "tinytrain.conv2d_grad_input"(%g, %sp) {groups = 1 : i64, padding = array<i64: 0, 0>, strides = array<i64: 1, 1>} : (tensor<1x4x4x8xf32>, tensor<1x1x16x8xf32>) -> tensor<1x4x4x16xf32>
  %b = "tinytrain.qclamp_grad"(%a, %ydw) {clamp = array<i64: -128, 127>} : (tensor<1x4x4x16xf32>, tensor<1x4x4x16xi8>) -> tensor<1x4x4x16xf32>
  %db = "tinytrain.bias_grad"(%b) : (tensor<1x4x4x16xf32>) -> tensor<16xf32>
  %ds = "tinytrain.channel_scale"(%db) {scales = array<f64: 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0, 13.0, 14.0, 15.0, 16.0>} : (tensor<16xf32>) -> tensor<16xf32>
  %nb = "tinytrain.qsgd_update"(%bias, %ds, %loss) {lr = 0.5 : f32} : (tensor<16xi32>, tensor<16xf32>, tensor<f32>) -> tensor<16xi32>
  %sd = "tinytrain.channel_scale"(%wd) {scales = array<f64: 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0>} : (tensor<3x3x1x16xi8>) -> tensor<3x3x1x16xf32>
  %d = "tinytrain.conv2d_grad_input"(%b, %sd) {groups = 16 : i64, padding = array<i64: 1, 1>, strides = array<i64: 1, 1>} : (tensor<1x4x4x16xf32>, tensor<3x3x1x16xf32>) -> tensor<1x4x4x16xf32>
  %f = "tinytrain.conv2d_grad_input"(%d, %we) {groups = 1 : i64, padding = array<i64: 0, 0>, strides = array<i64: 1, 1>} : (tensor<1x4x4x16xf32>, tensor<1x1x4x16xf32>) -> tensor<1x4x4x4xf32>
  return %f, %nb : tensor<1x4x4x4xf32>, tensor<16xi32>
}

// A region whose only consumer is a trained bias's update (the lowest trained block of a sparse
// scheme: the projection's input gradient, the depthwise output's clamp, its bias): the next
// group's barrier carries the group's bias gradient, so the groups run one after the other (the
// bias's insert chain cannot go through the barrier, and nothing else would order them).
// RUN: tinytrain-opt -p 'channel-groups{groups=2 min_bytes=0 bias_updates=1}' %s | filecheck %s --check-prefix=BONLY
// BONLY-LABEL: func.func @bias_only(
// BONLY: %[[G0:.*]] = "tinytrain.bias_grad"({{.*}}) : (tensor<1x4x4x8xf32>) -> tensor<8xf32>
// BONLY: "tinytrain.insert"(%arg2, {{.*}}) {offsets = array<i64: 0>}
// BONLY: %[[B:.*]]:2 = "util.optimization_barrier"(%arg0, %[[G0]])
// BONLY: "tinytrain.conv2d_grad_input"(%[[B]]#0,
// BONLY: "tinytrain.insert"({{.*}}) {offsets = array<i64: 8>}
func.func @bias_only(%g: tensor<1x4x4x8xf32>, %wp: tensor<1x1x16x8xi8>, %bias: tensor<16xi32>,
                     %ydw: tensor<1x4x4x16xi8>, %loss: tensor<f32>) -> tensor<16xi32> {
  %sp = "tinytrain.channel_scale"(%wp) {scales = array<f64: 1.0, 2.0, 1.0, 2.0, 1.0, 2.0, 1.0, 2.0>} : (tensor<1x1x16x8xi8>) -> tensor<1x1x16x8xf32>
  %a = "tinytrain.conv2d_grad_input"(%g, %sp) {groups = 1 : i64, padding = array<i64: 0, 0>, strides = array<i64: 1, 1>} : (tensor<1x4x4x8xf32>, tensor<1x1x16x8xf32>) -> tensor<1x4x4x16xf32>
  %b = "tinytrain.qclamp_grad"(%a, %ydw) {clamp = array<i64: -128, 127>} : (tensor<1x4x4x16xf32>, tensor<1x4x4x16xi8>) -> tensor<1x4x4x16xf32>
  %db = "tinytrain.bias_grad"(%b) : (tensor<1x4x4x16xf32>) -> tensor<16xf32>
  %nb = "tinytrain.qsgd_update"(%bias, %db, %loss) {lr = 0.5 : f32} : (tensor<16xi32>, tensor<16xf32>, tensor<f32>) -> tensor<16xi32>
  return %nb : tensor<16xi32>
}
