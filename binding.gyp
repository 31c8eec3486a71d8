{
  "targets": [
    {
      "target_name": "nanogpt_torch",
      "sources": [
        "native/addon.cc",
        "native/tensor.cc",
        "native/ops.cc",
        "native/autograd.cc",
        "native/optim.cc",
        "native/dist.cc",
        "native/kernels.cc",
        "native/rows.cc",
        "native/attention.cc",
        "native/gelu.cc",
        "native/cross_entropy.cc",
        "native/linear.cc"
      ],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")",
        "<!@(node scripts/torch-paths.mjs include)"
      ],
      "defines": [
        "NAPI_VERSION=8",
        "NODE_ADDON_API_CPP_EXCEPTIONS",
        "NODE_ADDON_API_CPP_EXCEPTIONS_ALL",
        "<!@(node scripts/torch-paths.mjs defines)"
      ],
      "cflags!": ["-fno-exceptions", "-fno-rtti"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++17", "-std=gnu++1y", "-std=gnu++20"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-frtti", "-O3", "-fopenmp", "-Wno-unused-parameter", "-Wno-deprecated-declarations", "-Wno-psabi"],
      "libraries": ["<!@(node scripts/torch-paths.mjs ldflags)"]
    }
  ]
}
