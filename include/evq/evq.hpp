// evq/evq.hpp: the whole public API.
#pragma once

#include "evq/event.hpp"
#include "evq/net.hpp"
#include "evq/poll.hpp"
#include "evq/result.hpp"
#include "evq/ring.hpp"
#include "evq/source.hpp"
