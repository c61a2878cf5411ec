{
  "targets": [
    {
      "target_name": "netns_cluster",
      "sources": [
        "native/addon.cc",
        "native/worker.cc",
        "native/nlsock.cc",
        "native/netns.cc",
        "native/attr.cc",
        "native/link.cc",
        "native/addr.cc",
        "native/route.cc",
        "native/neigh.cc",
        "native/sysctl.cc",
        "native/errors.cc",
        "native/nft.cc",
        "native/nft_args.cc",
        "native/nft_expr.cc",
        "native/nft_dump.cc",
        "native/iptc.cc",
        "native/lock.cc",
        "native/notify.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_DEPRECATED", "NAPI_CPP_EXCEPTIONS"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Wno-missing-field-initializers", "<!@(sh scripts/native-deps.sh --cflags)"],
      "libraries": ["<!@(sh scripts/native-deps.sh --libs)", "-ldl", "-lpthread"]
    },
    {
      "target_name": "netns-exec",
      "type": "executable",
      "sources": ["native/netns_exec.c"],
      "cflags": ["-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter"]
    }
  ]
}
