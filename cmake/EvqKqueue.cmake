# The kqueue backend (src/sys/kqueue/), included from src/CMakeLists.txt once
# target evq exists. Which kqueue it builds against:
#   EVQ_KQUEUE_ROOT=<prefix>  another implementation: <prefix>/include/sys/event.h
#                             (or include/kqueue/sys/event.h) and its library
#   Linux + EVQ_WITH_KQUEUE   the test double in tests/support/kqueue/ (tests only)
#   BSD, macOS                the system's kqueue (in libc)
# Otherwise the backend is not built. 32-bit targets are left out: kqueue's
# udata (a pointer) must carry evq's 64-bit user data.

set(_evq_kqueue_sources ${PROJECT_SOURCE_DIR}/src/sys/kqueue/kqueue_selector.cpp)
set(_evq_kqueue_wanted OFF)
if(EVQ_KQUEUE_ROOT OR (CMAKE_SYSTEM_NAME STREQUAL "Linux" AND EVQ_WITH_KQUEUE)
   OR CMAKE_SYSTEM_NAME MATCHES "BSD|Darwin|DragonFly")
  set(_evq_kqueue_wanted ON)
endif()

if(_evq_kqueue_wanted AND NOT CMAKE_SIZEOF_VOID_P EQUAL 8)
  message(STATUS "evq: kqueue backend skipped: it needs a 64-bit target (poll(2) serves instead)")
  set(_evq_kqueue_wanted OFF)
endif()

if(_evq_kqueue_wanted)
  if(EVQ_KQUEUE_ROOT)
    find_path(EVQ_KQUEUE_INCLUDE_DIR sys/event.h
      PATHS ${EVQ_KQUEUE_ROOT}/include ${EVQ_KQUEUE_ROOT}/include/kqueue
      NO_DEFAULT_PATH)
    find_library(EVQ_KQUEUE_LIBRARY NAMES kqueue
      PATHS ${EVQ_KQUEUE_ROOT}/lib ${EVQ_KQUEUE_ROOT}/lib64 ${EVQ_KQUEUE_ROOT}
      NO_DEFAULT_PATH)
    if(NOT EVQ_KQUEUE_INCLUDE_DIR OR NOT EVQ_KQUEUE_LIBRARY)
      message(FATAL_ERROR "EVQ_KQUEUE_ROOT=${EVQ_KQUEUE_ROOT}: no include/sys/event.h "
        "(or include/kqueue/sys/event.h) and lib/libkqueue there "
        "(found: '${EVQ_KQUEUE_INCLUDE_DIR}', '${EVQ_KQUEUE_LIBRARY}')")
    endif()
    message(STATUS "evq: kqueue backend against ${EVQ_KQUEUE_INCLUDE_DIR}, ${EVQ_KQUEUE_LIBRARY}")
    # SYSTEM: it stands in for a system header.
    target_include_directories(evq SYSTEM PRIVATE ${EVQ_KQUEUE_INCLUDE_DIR})
    target_link_libraries(evq PRIVATE ${EVQ_KQUEUE_LIBRARY})
  elseif(CMAKE_SYSTEM_NAME STREQUAL "Linux")
    # The double registers its own test (kqueue_double_test) when
    # BUILD_TESTING or EVQ_BUILD_TESTS is set. add_test() counts only in
    # directories where testing is enabled, and src/ is added before the top
    # level's enable_testing(): enable it here (this directory and below).
    if(BUILD_TESTING OR EVQ_BUILD_TESTS)
      enable_testing()
    endif()
    if(NOT TARGET evq_kqueue_double)
      add_subdirectory(${PROJECT_SOURCE_DIR}/tests/support/kqueue ${CMAKE_BINARY_DIR}/kqueue_double)
    endif()
    message(STATUS "evq: kqueue backend against the test double (tests/support/kqueue)")
    # BUILD_INTERFACE: a build for tests; the double is never installed.
    target_link_libraries(evq PRIVATE $<BUILD_INTERFACE:evq_kqueue_double>)
  else()
    include(CheckIncludeFileCXX)
    check_include_file_cxx(sys/event.h EVQ_HAVE_SYS_EVENT_H)
    if(NOT EVQ_HAVE_SYS_EVENT_H)
      message(WARNING "evq: no <sys/event.h> on ${CMAKE_SYSTEM_NAME}: kqueue backend skipped")
      set(_evq_kqueue_wanted OFF)
    endif()
  endif()
endif()

if(_evq_kqueue_wanted)
  target_sources(evq PRIVATE ${_evq_kqueue_sources})
  target_compile_definitions(evq PRIVATE EVQ_HAVE_KQUEUE=1)
endif()
unset(_evq_kqueue_sources)
unset(_evq_kqueue_wanted)
