# Windows (cross-compiled with cmake/toolchain-mingw64.cmake, run under Wine):
# included from tests/CMakeLists.txt under if(WIN32), in place of
# find_package(GTest). Provides GTest::gtest_main and sets
# EVQ_WINDOWS_TEST_SOURCES, the test files that apply on Windows.

# Debian's libgtest-dev is built for Linux; its sources (package googletest)
# build for MinGW as part of this project.
set(EVQ_GTEST_SOURCE_DIR /usr/src/googletest CACHE PATH "GoogleTest sources to build for Windows")
if(NOT TARGET GTest::gtest_main)
  set(INSTALL_GTEST OFF CACHE BOOL "" FORCE)
  set(BUILD_GMOCK OFF CACHE BOOL "" FORCE)
  add_subdirectory(${EVQ_GTEST_SOURCE_DIR} ${CMAKE_BINARY_DIR}/googletest EXCLUDE_FROM_ALL)
  if(NOT TARGET GTest::gtest_main)
    add_library(GTest::gtest ALIAS gtest)
    add_library(GTest::gtest_main ALIAS gtest_main)
  endif()
endif()

# Every test file whose tests apply to Windows. Left out: pipe_test and
# unix_test (pipes and Unix sockets are POSIX-only); POSIX-only tests inside
# the listed files are guarded with #if EVQ_POSIX. generation_test's tests all
# use UnixStream today, so none runs on Windows yet; it stays listed so that
# socket-neutral ones run here as soon as they exist.
set(EVQ_WINDOWS_TEST_SOURCES)
foreach(name
    echo_test
    generation_test
    modify_test
    poll_test
    registry_errors_test
    registry_thread_test
    ring_test
    socket_addr_test
    tcp_test
    timer_queue_test
    timer_test
    trigger_test
    udp_test
    waker_test)
  if(EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/${name}.cpp)
    list(APPEND EVQ_WINDOWS_TEST_SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/${name}.cpp)
  endif()
endforeach()
