# demo_bad_option: a bad option gets a clear message and exit code 2 (and so
# does a bad value); --help exits 0.
#   cmake -DDEMO=<path to evq_demo> -P bad_option.cmake
if(NOT DEMO)
  message(FATAL_ERROR "usage: cmake -DDEMO=<evq_demo> -P bad_option.cmake")
endif()

function(expect_exit code message_part)
  execute_process(COMMAND "${DEMO}" ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err TIMEOUT 20)
  if(NOT rc STREQUAL "${code}")
    message(FATAL_ERROR "evq_demo ${ARGN}: exit '${rc}', expected ${code}\nstdout:\n${out}\nstderr:\n${err}")
  endif()
  string(FIND "${out}${err}" "${message_part}" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "evq_demo ${ARGN}: output lacks '${message_part}'\nstdout:\n${out}\nstderr:\n${err}")
  endif()
endfunction()

expect_exit(2 "unknown option '--no-such-option'" --no-such-option)
expect_exit(2 "unknown model 'nope'" --models evq,nope)
expect_exit(2 "--clients" --clients 10,abc)
expect_exit(2 "--duration" --duration -1)
expect_exit(2 "--think" --think)
expect_exit(2 "--report: cannot write" --report /nonexistent-dir/report.html)
expect_exit(0 "usage: evq_demo" --help)
message(STATUS "demo_bad_option: bad options exit 2 with a message")
