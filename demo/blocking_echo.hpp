// The per-connection loop both blocking models run: read what arrives, write
// it back, until the peer closes.
#pragma once

namespace demo {

// Serves one blocking socket until end of stream or an error; closes it.
void serve_blocking_connection(int fd);

}  // namespace demo
