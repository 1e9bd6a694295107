// Runs one (model, N) cell: the model's server in one process, the evq load
// generator in another, through an idle phase and a load phase.
#pragma once

#include <functional>
#include <string_view>

#include "options.hpp"
#include "results.hpp"

namespace demo {

// Called with a short phase name ("starting", "connecting", "idle", "load")
// so that the caller can show progress.
using ProgressFn = std::function<void(std::string_view phase)>;

CellResult run_cell(ModelId model, int clients, const Options& options, const ProgressFn& progress);

// How many 127.0.0.x source addresses N connections spread over: about
// 5,000 connections each (see client_socket.hpp).
int sources_for(int clients);

}  // namespace demo
