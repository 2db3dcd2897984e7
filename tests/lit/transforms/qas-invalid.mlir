// RUN: tinytrain-opt --split-input-file --verify-diagnostics -p qas %s

func.func @train_step(%b: tensor<2xi32>, %g: tensor<2xf32>, %l: tensor<f32>) -> tensor<2xi32> {
  // expected-error@+1 {{qas: the parameter updated at}}
  %b2 = "tinytrain.qsgd_update"(%b, %g, %l) {lr = 5.000000e-01 : f32} : (tensor<2xi32>, tensor<2xf32>, tensor<f32>) -> tensor<2xi32>
  return %b2 : tensor<2xi32>
}
