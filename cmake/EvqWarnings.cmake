# The project's own targets build with every warning an error.
add_library(evq_warnings INTERFACE)
target_compile_options(evq_warnings INTERFACE
  $<$<CXX_COMPILER_ID:GNU,Clang>:-Wall -Wextra -Werror -Wshadow -Wnon-virtual-dtor>)
