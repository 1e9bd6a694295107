// Numbers as the table and the report print them.
#pragma once

#include <string>

namespace demo {

std::string format_count(double v);         // 19,998
std::string format_si(double v);            // 20.1k, 1.25M, 950
std::string format_millis(double ms);       // 52us, 1.23ms, 45.1ms, 2.91s
std::string format_kib(double kib);         // 812 KB, 3.2 MB, 1.05 GB (binary units)
std::string format_bytes(double bytes);     // 940 B, 8.1 KB, 2.0 MB
std::string format_seconds(double s);       // 0.41, 3.05
std::string format_ratio(double r);         // 1.00x, 12x, 0.05x; "-" when not finite

}  // namespace demo
