# EVQ_SANITIZE=address -> ASan + UBSan; EVQ_SANITIZE=thread -> TSan.
# Applied to everything in the build, GoogleTest included, so that the
# instrumented and uninstrumented code never share a container.
if(EVQ_SANITIZE STREQUAL "address")
  add_compile_options(-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all)
  add_link_options(-fsanitize=address,undefined)
elseif(EVQ_SANITIZE STREQUAL "thread")
  add_compile_options(-fsanitize=thread -fno-omit-frame-pointer)
  add_link_options(-fsanitize=thread)
elseif(NOT EVQ_SANITIZE STREQUAL "")
  message(FATAL_ERROR "EVQ_SANITIZE must be address, thread or empty")
endif()
