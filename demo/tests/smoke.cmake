# demo_smoke: runs the demo with a tiny configuration and checks the structure
# of what it prints and of the HTML report it writes.
#   cmake -DDEMO=<path to evq_demo> -DWORK_DIR=<scratch dir> -P smoke.cmake
if(NOT DEMO OR NOT WORK_DIR)
  message(FATAL_ERROR "usage: cmake -DDEMO=<evq_demo> -DWORK_DIR=<dir> -P smoke.cmake")
endif()
file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")
set(report "${WORK_DIR}/report.html")

execute_process(
  COMMAND "${DEMO}" --models evq,busy-poll --clients 10 --duration 1 --report "${report}"
  WORKING_DIRECTORY "${WORK_DIR}"
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err TIMEOUT 100)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "evq_demo exited with '${rc}'\nstdout:\n${out}\nstderr:\n${err}")
endif()

function(expect text haystack what)
  string(FIND "${haystack}" "${text}" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "${what} lacks '${text}'\nstdout:\n${out}")
  endif()
endfunction()

# The terminal table: a block for N=10 with one row per model, each with figures.
expect("N = 10 clients" "${out}" "the terminal table")
foreach(label "evq \\([a-z_]+\\)" "busy poll")
  string(REGEX MATCH "\n${label} [^\n]*" row "${out}")
  if(NOT row)
    message(FATAL_ERROR "the terminal table has no row for '${label}'\nstdout:\n${out}")
  endif()
  if(row MATCHES "could not run")
    message(FATAL_ERROR "a model could not run in the smoke configuration:\n${row}")
  endif()
  if(NOT row MATCHES "[0-9]+(us|ms|s) +[0-9]")
    message(FATAL_ERROR "the row for '${label}' has no latency figures:\n${row}")
  endif()
endforeach()
expect("${report}" "${out}" "the final line (report path)")

# The report: one self-contained HTML file with a table row per model and the charts.
if(NOT EXISTS "${report}")
  message(FATAL_ERROR "no report at ${report}\nstdout:\n${out}")
endif()
file(READ "${report}" html)
foreach(part "<!DOCTYPE html>" "</html>" "<table>" "<tr data-model=\"evq\">" "<tr data-model=\"busy-poll\">"
             "Throughput" "p99 latency" "Server CPU" "peak memory")
  expect("${part}" "${html}" "the report")
endforeach()
string(REGEX MATCHALL "<svg[ >]" svgs "${html}")
list(LENGTH svgs svg_count)
if(svg_count LESS 4)
  message(FATAL_ERROR "the report has ${svg_count} <svg> charts, expected at least 4")
endif()
string(REGEX MATCHALL "</svg>" svg_ends "${html}")
list(LENGTH svg_ends svg_end_count)
if(NOT svg_end_count EQUAL svg_count)
  message(FATAL_ERROR "the report's <svg> elements are not closed (${svg_count} open, ${svg_end_count} closed)")
endif()
if(html MATCHES "<script")
  message(FATAL_ERROR "the report must not need JavaScript")
endif()
message(STATUS "demo_smoke: table and report (${svg_count} charts) look right")
