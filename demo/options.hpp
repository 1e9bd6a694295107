// The command line of evq_demo: what a user may choose, parsed and checked.
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include "models.hpp"

namespace demo {

// Everything one run of the comparison needs. The defaults are the README's
// first command: they finish in under two minutes on a 2-core machine.
struct Options {
  std::vector<ModelId> models = default_models();
  std::vector<int> clients = {100, 1000, 10000};
  std::chrono::duration<double> duration{3.0};  // load phase of each (model, N) cell
  std::chrono::milliseconds think{50};          // between a client's intended sends
  int pool_threads = 128;                       // size of the blocking thread pool
  std::string report_path = "evq-demo-report.html";
};

// What main should do after parsing.
enum class Command { run, help, bad_usage };

struct ParsedOptions {
  Command command = Command::run;
  Options options;
  std::string error;  // for bad_usage: one line saying what is wrong
};

// Parses the user's options (argv[1..]). Never exits: main decides.
ParsedOptions parse_options(int argc, char** argv);

// The text --help prints.
std::string usage_text(std::string_view program);

}  // namespace demo
