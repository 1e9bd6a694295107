// evq/net.hpp: every socket and pipe type.
#pragma once

#include "evq/pipe.hpp"
#include "evq/socket_addr.hpp"
#include "evq/tcp.hpp"
#include "evq/udp.hpp"
#include "evq/unix.hpp"
