#include "sys/uring/uring_ring.hpp"

#include <liburing.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <chrono>
#include <new>
#include <utility>
#include <vector>

#include "core/syscall.hpp"
#include "net/posix/os_compat.hpp"
#include "net/posix/sockaddr.hpp"
#include "net/socket_access.hpp"

namespace evq::detail {

namespace {

// The kernel's user data: record index in the low 32 bits, its generation
// above. Generations start at 1 (ring_op.hpp), so generation 0 marks the
// engine's own requests.
constexpr std::uint64_t kWakeData = 1;    // the eventfd's multishot poll
constexpr std::uint64_t kIgnoreData = 2;  // cancels: their CQEs say nothing we need

std::uint64_t user_data(OpIndex i, std::uint32_t generation) noexcept {
  return (std::uint64_t{generation} << 32) | i;
}

// 256 SQEs: a batch larger than that is submitted in pieces within one
// run(). 4096 CQEs (64 KiB): completions beyond it wait on the kernel's
// overflow list (IORING_FEAT_NODROP) and are flushed at the next reap.
constexpr unsigned kSqEntries = 256;
constexpr unsigned kCqEntries = 4096;
constexpr unsigned kNeededFeatures = IORING_FEAT_NODROP | IORING_FEAT_EXT_ARG | IORING_FEAT_SUBMIT_STABLE;
constexpr int kNeededOps[] = {
    IORING_OP_READ,   IORING_OP_WRITE,   IORING_OP_RECV,    IORING_OP_SEND,         IORING_OP_RECVMSG,
    IORING_OP_SENDMSG, IORING_OP_ACCEPT, IORING_OP_CONNECT, IORING_OP_TIMEOUT, IORING_OP_ASYNC_CANCEL,
    IORING_OP_POLL_ADD,
};
// Iovec arrays of vectored operations only need to live until the SQE is
// submitted (IORING_FEAT_SUBMIT_STABLE): they are built here, and the SQ is
// submitted when this runs out.
constexpr std::size_t kIovScratch = 1024;
// A provided-buffer ring holds at most 32768 entries (io_uring_register_buf_ring(3)).
constexpr std::uint32_t kMaxBufRing = 32768;

bool unavailable(int err) noexcept {
  return err == ENOSYS || err == EPERM || err == EACCES || err == EINVAL || err == EOPNOTSUPP;
}

bool is_socket(SourceType t) noexcept {
  return t == SourceType::tcp_stream || t == SourceType::unix_stream || t == SourceType::udp_socket;
}

std::error_code canceled() noexcept { return std::make_error_code(std::errc::operation_canceled); }

// Per operation: what the kernel reads or writes beside the user's buffer
// for as long as the operation runs.
struct OpExtra {
  msghdr msg{};
  iovec iov{};
  posix::Sockaddr addr;
  __kernel_timespec ts{};
};

// A pool registered as a provided-buffer ring; its group id is its index + 1.
struct BufRing {
  io_uring_buf_ring* ring = nullptr;
  std::size_t bytes = 0;
  std::uint32_t entries = 0;
  PoolState* pool = nullptr;  // null: a free slot
};

}  // namespace

struct UringRing::State {
  io_uring ring{};
  int wakefd = -1;
  bool wake_armed = false;
  bool shutting_down = false;
  std::size_t in_kernel = 0;  // operations whose CQE is still to come
  std::vector<std::unique_ptr<OpExtra[]>> extra;  // by record index, OpTable's chunking
  std::vector<BufRing> bufrings;
  std::array<iovec, kIovScratch> iov{};
  std::size_t iov_used = 0;
  // Operations cancel() was called for, oldest request first, threaded
  // through engine_next; engine_word marks them (kQueued) and
  // holds their CQE's result once it came (kDone | res). The kernel posts
  // the CQEs of a batch of cancellations in an order of its own (each kind
  // of request is cancelled by its own code), so completions leave this
  // queue from its head only: cancelled operations complete in the order
  // cancel() named them, as in the emulation. The head is being cancelled,
  // so the ones behind it wait briefly.
  OpIndex cancel_head = no_op;
  OpIndex cancel_tail = no_op;

  State() noexcept { ring.ring_fd = -1; }
  ~State() {
    // The kernel lets go of the buffer rings with the ring itself.
    if (ring.ring_fd >= 0) io_uring_queue_exit(&ring);
    for (BufRing& b : bufrings)
      if (b.ring) ::munmap(b.ring, b.bytes);
    if (wakefd >= 0) ::close(wakefd);
  }

  OpExtra* extra_of(OpIndex i) noexcept {
    const std::size_t chunk = i >> OpTable::chunk_bits;
    while (extra.size() <= chunk) {
      std::unique_ptr<OpExtra[]> c(new (std::nothrow) OpExtra[OpTable::chunk_size]);
      if (!c) return nullptr;
      try {
        extra.push_back(std::move(c));
      } catch (...) {
        return nullptr;
      }
    }
    return &extra[chunk][i & (OpTable::chunk_size - 1)];
  }

  // ---- Submission --------------------------------------------------------------

  std::error_code submit() noexcept {
    // Buffers first: a recv in this batch must find what release() gave back.
    refill();
    const int r = io_uring_submit(&ring);
    // The scratch iovecs are free once nothing queued points at them.
    if (io_uring_sq_ready(&ring) == 0) iov_used = 0;
    // EINTR: what is left goes with the next submit. EBUSY/EAGAIN: the
    // kernel wants CQEs reaped first, which run() does next.
    if (r >= 0 || r == -EINTR) return {};
    return errno_code(-r);
  }

  // A free SQE, submitting the ones queued when the SQ is full.
  io_uring_sqe* sqe() noexcept {
    io_uring_sqe* s = io_uring_get_sqe(&ring);
    if (s) return s;
    (void)submit();
    return io_uring_get_sqe(&ring);
  }

  // Room for `n` iovecs that stay valid until the next submit.
  iovec* iov_room(std::size_t n) noexcept {
    if (iov_used + n > iov.size()) {
      (void)submit();
      if (iov_used + n > iov.size()) return nullptr;
    }
    iovec* p = iov.data() + iov_used;
    iov_used += n;
    return p;
  }

  void arm_wake() noexcept {
    io_uring_sqe* s = sqe();
    if (!s) return;  // retried at the next run()
    io_uring_prep_poll_multishot(s, wakefd, POLLIN);
    io_uring_sqe_set_data64(s, kWakeData);
    wake_armed = true;
  }

  // ---- Buffer pools ------------------------------------------------------------

  // The pool's buffer group, registering it on first use; 0 on failure.
  std::uint16_t group_of(PoolState& pool) noexcept {
    if (pool.engine_tag) return static_cast<std::uint16_t>(pool.engine_tag);
    std::size_t slot = 0;
    while (slot < bufrings.size() && bufrings[slot].pool) ++slot;
    if (slot >= 0xffff) return 0;
    if (slot == bufrings.size()) {
      try {
        bufrings.emplace_back();
      } catch (...) {
        return 0;
      }
    }
    BufRing& b = bufrings[slot];
    b.entries = std::min(std::bit_ceil(pool.count), kMaxBufRing);
    b.bytes = std::size_t{b.entries} * sizeof(io_uring_buf);
    void* mem = ::mmap(nullptr, b.bytes, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (mem == MAP_FAILED) return 0;
    b.ring = static_cast<io_uring_buf_ring*>(mem);
    io_uring_buf_ring_init(b.ring);
    io_uring_buf_reg reg{};
    reg.ring_addr = reinterpret_cast<std::uint64_t>(b.ring);
    reg.ring_entries = b.entries;
    reg.bgid = static_cast<std::uint16_t>(slot + 1);
    if (io_uring_register_buf_ring(&ring, &reg, 0) < 0) {
      ::munmap(b.ring, b.bytes);
      b.ring = nullptr;
      return 0;
    }
    b.pool = &pool;
    pool.engine_tag = reg.bgid;
    refill();  // before any SQE of this batch can reach the kernel
    return reg.bgid;
  }

  // Moves the ids BufferPool::release() put back into the kernel's ring.
  void refill() noexcept {
    for (BufRing& b : bufrings) {
      if (!b.pool || b.pool->free_ids.empty()) continue;
      PoolState& pool = *b.pool;
      const int mask = io_uring_buf_ring_mask(b.entries);
      int added = 0;
      while (!pool.free_ids.empty() && pool.provided < b.entries) {
        const std::uint32_t id = pool.free_ids.back();
        pool.free_ids.pop_back();
        io_uring_buf_ring_add(b.ring, pool.data(id), static_cast<unsigned>(pool.buffer_size),
                              static_cast<unsigned short>(id), mask, added++);
        ++pool.provided;
      }
      io_uring_buf_ring_advance(b.ring, added);
    }
  }

  // ---- Starting operations -----------------------------------------------------

  void start(RingState& state, OpIndex i) noexcept;
  void withdraw(RingState& state, OpIndex i) noexcept;

  // ---- Completions -------------------------------------------------------------

  void reap(RingState& state) noexcept {
    for (;;) {
      unsigned head = 0;
      unsigned n = 0;
      io_uring_cqe* cqe = nullptr;
      io_uring_for_each_cqe(&ring, head, cqe) {
        on_cqe(state, cqe->user_data, cqe->res, cqe->flags);
        ++n;
      }
      io_uring_cq_advance(&ring, n);
      // Completions that did not fit the CQ wait on the kernel's overflow
      // list until a system call flushes them.
      if (!io_uring_cq_has_overflow(&ring) || (io_uring_get_events(&ring) < 0 && n == 0)) break;
    }
  }

  static constexpr std::uint64_t kQueued = std::uint64_t{1} << 33;
  static constexpr std::uint64_t kDone = std::uint64_t{1} << 32;

  // Its CQE came: done, and then complete what the queue's head allows.
  void cancelled_done(RingState& state, OpIndex i, int res) noexcept {
    state.op(i).engine_word = kQueued | kDone | static_cast<std::uint32_t>(res);
    while (cancel_head != no_op && (state.op(cancel_head).engine_word & kDone)) {
      const OpIndex k = cancel_head;
      OpRecord& op = state.op(k);
      cancel_head = op.engine_next;
      if (cancel_head == no_op) cancel_tail = no_op;
      const int r = static_cast<int>(static_cast<std::uint32_t>(op.engine_word));
      op.engine_word = 0;
      op.engine_next = no_op;
      complete_with(state, k, r == -EINTR ? -ECANCELED : r);  // a cancel that caught a blocking call: EINTR
    }
  }

  void complete_with(RingState& state, OpIndex i, int res) noexcept;

  void on_cqe(RingState& state, std::uint64_t data, int res, unsigned flags) noexcept;
  void finish(RingState& state, OpIndex i, int res, unsigned flags) noexcept;
};

UringRing::UringRing(std::unique_ptr<State> state) noexcept : s_(std::move(state)) {}
UringRing::UringRing(UringRing&& other) noexcept = default;
UringRing::~UringRing() = default;

namespace {

int setup(io_uring& ring) noexcept {
  io_uring_params p{};
  // SUBMIT_ALL: an SQE that fails at submission (a closed descriptor) must
  // not leave the ones behind it unsubmitted. COOP_TASKRUN: completions run
  // as task work at our next io_uring_enter instead of interrupting the
  // thread with an IPI (the readiness backend measured 11,000 against 17,000
  // round trips/s; see uring_selector.cpp). The engine enters the kernel at
  // every run() that has nothing ready, so nothing waits longer than that.
  p.flags = IORING_SETUP_SUBMIT_ALL | IORING_SETUP_CQSIZE | IORING_SETUP_CLAMP | IORING_SETUP_COOP_TASKRUN;
  p.cq_entries = kCqEntries;
  const int r = io_uring_queue_init_params(kSqEntries, &ring, &p);
  if (r < 0) return r;
  if ((p.features & kNeededFeatures) != kNeededFeatures) {
    io_uring_queue_exit(&ring);
    ring.ring_fd = -1;
    return -EOPNOTSUPP;
  }
  return 0;
}

// Every opcode the engine uses, and provided-buffer rings (a one-entry ring
// registered and dropped again).
bool kernel_has_what_we_need(io_uring& ring) noexcept {
  io_uring_probe* probe = io_uring_get_probe_ring(&ring);
  if (!probe) return false;
  bool ok = true;
  for (int op : kNeededOps) ok = ok && io_uring_opcode_supported(probe, op);
  io_uring_free_probe(probe);
  if (!ok) return false;
  void* mem = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
  if (mem == MAP_FAILED) return false;
  io_uring_buf_reg reg{};
  reg.ring_addr = reinterpret_cast<std::uint64_t>(mem);
  reg.ring_entries = 1;
  reg.bgid = 0xffff;
  ok = io_uring_register_buf_ring(&ring, &reg, 0) == 0;
  if (ok) io_uring_unregister_buf_ring(&ring, reg.bgid);
  ::munmap(mem, 4096);
  return ok;
}

}  // namespace

Result<UringRing> UringRing::open(std::optional<Backend> backend, const RingOptions&) {
  if (backend && *backend != Backend::io_uring) return errc::backend_unavailable;
  auto s = std::unique_ptr<State>(new (std::nothrow) State);
  if (!s) return std::make_error_code(std::errc::not_enough_memory);
  if (const int r = setup(s->ring); r < 0) {
    s->ring.ring_fd = -1;  // liburing may have left a closed one there
    if (unavailable(-r)) return errc::backend_unavailable;
    return errno_code(-r);
  }
  if (!kernel_has_what_we_need(s->ring)) return errc::backend_unavailable;
  s->wakefd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (s->wakefd < 0) return errno_code();
  s->arm_wake();
  return UringRing(std::move(s));
}

// ---- Operations ----------------------------------------------------------------

void UringRing::State::start(RingState& state, OpIndex i) noexcept {
  OpRecord& op = state.op(i);
  if (op.kind == RingOp::timeout) {
    const auto now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                         std::chrono::steady_clock::now().time_since_epoch())
                         .count();
    if (op.deadline_ns <= now) return state.complete(i, {}, 0);
  }
  // Vectored: the iovecs first, since making room may submit the SQ, and an
  // SQE taken before that would go out unprepared.
  iovec* v = nullptr;
  if (op.vectored) {
    // Slices beyond max_io_slices are left for the next call, as the emulation does.
    const std::size_t n = std::min<std::size_t>(
        op.kind == RingOp::read ? op.read_slices.size() : op.write_slices.size(), posix::max_io_slices);
    v = iov_room(n);
    if (!v) return state.complete(i, std::make_error_code(std::errc::not_enough_memory), 0);
    for (std::size_t k = 0; k < n; ++k)
      v[k] = op.kind == RingOp::read
                 ? iovec{op.read_slices[k].data(), op.read_slices[k].size()}
                 : iovec{const_cast<std::byte*>(op.write_slices[k].data()), op.write_slices[k].size()};
  }
  OpExtra* x = extra_of(i);
  io_uring_sqe* s = x ? sqe() : nullptr;
  if (!s) return state.complete(i, std::make_error_code(std::errc::not_enough_memory), 0);
  const int fd = op.handle;
  switch (op.kind) {
    case RingOp::read:
      if (op.vectored) {
        x->msg = msghdr{};
        x->msg.msg_iov = v;
        x->msg.msg_iovlen = std::min<std::size_t>(op.read_slices.size(), posix::max_io_slices);
        io_uring_prep_recvmsg(s, fd, &x->msg, 0);
      } else if (is_socket(op.source_type)) {
        io_uring_prep_recv(s, fd, op.data, op.size, 0);
      } else {
        io_uring_prep_read(s, fd, op.data, static_cast<unsigned>(std::min<std::size_t>(op.size, 0x7ffff000)),
                           ~std::uint64_t{0});
      }
      break;
    case RingOp::write:
      if (op.vectored) {
        x->msg = msghdr{};
        x->msg.msg_iov = v;
        x->msg.msg_iovlen = std::min<std::size_t>(op.write_slices.size(), posix::max_io_slices);
        io_uring_prep_sendmsg(s, fd, &x->msg, MSG_NOSIGNAL);
      } else if (is_socket(op.source_type)) {
        io_uring_prep_send(s, fd, op.data, op.size, MSG_NOSIGNAL);
      } else {
        io_uring_prep_write(s, fd, op.data, static_cast<unsigned>(std::min<std::size_t>(op.size, 0x7ffff000)),
                            ~std::uint64_t{0});
      }
      break;
    case RingOp::recv: {
      const std::uint16_t group = group_of(*op.pool);
      if (!group) {
        // The SQE is taken: make it a no-op that completes the record.
        io_uring_prep_nop(s);
        io_uring_sqe_set_data64(s, kIgnoreData);
        return state.complete(i, std::make_error_code(std::errc::not_enough_memory), 0);
      }
      const auto size = static_cast<unsigned>(std::min<std::size_t>(op.pool->buffer_size, 0x7ffff000));
      if (is_socket(op.source_type))
        io_uring_prep_recv(s, fd, nullptr, size, 0);
      else
        io_uring_prep_read(s, fd, nullptr, size, ~std::uint64_t{0});
      s->flags |= IOSQE_BUFFER_SELECT;
      s->buf_group = group;
      break;
    }
    case RingOp::accept:
      x->addr = posix::Sockaddr{};
      io_uring_prep_accept(s, fd, x->addr.get(), &x->addr.len, SOCK_NONBLOCK | SOCK_CLOEXEC);
      break;
    case RingOp::connect: {
      const int sock = posix::open_socket(posix::address_family(op.addr), SOCK_STREAM);
      if (sock < 0) {
        const std::error_code ec = errno_code();
        io_uring_prep_nop(s);
        io_uring_sqe_set_data64(s, kIgnoreData);
        return state.complete(i, ec, 0);
      }
      op.handle = sock;
      op.stream.emplace(SocketAccess::adopt_tcp_stream(sock));
      x->addr = posix::to_sockaddr(op.addr);
      io_uring_prep_connect(s, sock, x->addr.get(), x->addr.len);
      break;
    }
    case RingOp::recv_from:
      x->addr = posix::Sockaddr{};
      x->iov = {op.data, op.size};
      x->msg = msghdr{};
      x->msg.msg_name = x->addr.get();
      x->msg.msg_namelen = x->addr.len;
      x->msg.msg_iov = &x->iov;
      x->msg.msg_iovlen = 1;
      io_uring_prep_recvmsg(s, fd, &x->msg, 0);
      break;
    case RingOp::send_to:
      x->addr = posix::to_sockaddr(op.addr);
      x->iov = {op.data, op.size};
      x->msg = msghdr{};
      x->msg.msg_name = x->addr.get();
      x->msg.msg_namelen = x->addr.len;
      x->msg.msg_iov = &x->iov;
      x->msg.msg_iovlen = 1;
      io_uring_prep_sendmsg(s, fd, &x->msg, MSG_NOSIGNAL);
      break;
    case RingOp::timeout:
      x->ts.tv_sec = op.deadline_ns / 1'000'000'000;
      x->ts.tv_nsec = op.deadline_ns % 1'000'000'000;
      io_uring_prep_timeout(s, &x->ts, 0, IORING_TIMEOUT_ABS);
      break;
    case RingOp::wake:
      io_uring_prep_nop(s);
      io_uring_sqe_set_data64(s, kIgnoreData);
      return state.complete(i, std::make_error_code(std::errc::invalid_argument), 0);
  }
  io_uring_sqe_set_data64(s, user_data(i, op.generation));
  ++in_kernel;
}

// The cancelled operation completes through its own CQE: ECANCELED, or its
// result if the kernel finished it first. A cancel that finds nothing
// (ENOENT: the CQE is already on its way) changes nothing.
void UringRing::State::withdraw(RingState& state, OpIndex i) noexcept {
  io_uring_sqe* s = sqe();
  if (!s) return;  // the SQ cannot be flushed: the operation still completes on its own
  OpRecord& op = state.op(i);
  op.engine_word = kQueued;
  op.engine_next = no_op;
  if (cancel_tail == no_op)
    cancel_head = i;
  else
    state.op(cancel_tail).engine_next = i;
  cancel_tail = i;
  io_uring_prep_cancel64(s, user_data(i, op.generation), 0);
  io_uring_sqe_set_data64(s, kIgnoreData);
}

void UringRing::State::on_cqe(RingState& state, std::uint64_t data, int res, unsigned flags) noexcept {
  if ((data >> 32) == 0) {
    if (data == kWakeData && !(flags & IORING_CQE_F_MORE)) {
      // The multishot poll ended (CQ overflow, its submitter exited, or the
      // shutdown's cancel): arm a new one, except at shutdown.
      wake_armed = false;
      if (!shutting_down) arm_wake();
    }
    (void)res;
    return;
  }
  const auto i = static_cast<OpIndex>(data);
  if (i >= state.op_extent()) return;
  OpRecord& op = state.op(i);
  if (op.state != OpState::in_engine || op.generation != static_cast<std::uint32_t>(data >> 32)) return;
  --in_kernel;
  finish(state, i, res, flags);
}

void UringRing::State::finish(RingState& state, OpIndex i, int res, unsigned flags) noexcept {
  OpRecord& op = state.op(i);
  if (op.kind == RingOp::recv && (flags & IORING_CQE_F_BUFFER)) {
    // The kernel took this buffer from the ring: lent if data landed in it,
    // otherwise free again (it goes back to the ring at the next run()).
    PoolState& pool = *op.pool;
    const std::uint32_t id = flags >> IORING_CQE_BUFFER_SHIFT;
    --pool.provided;
    if (res > 0 && !shutting_down) {
      pool.lent[id] = 1;
      op.buffer = pool.data(id);
      op.buffer_id = id;
    } else {
      pool.give_back(id);
    }
  }
  if (op.kind == RingOp::accept && res == -ECONNABORTED && !shutting_down && !op.cancel_requested) {
    // Reset while it waited in the queue: take the next connection rather
    // than report what the caller can do nothing about (as TcpListener::accept).
    if (io_uring_sqe* s = sqe()) {
      OpExtra* x = extra_of(i);
      x->addr = posix::Sockaddr{};
      io_uring_prep_accept(s, op.handle, x->addr.get(), &x->addr.len, SOCK_NONBLOCK | SOCK_CLOEXEC);
      io_uring_sqe_set_data64(s, user_data(i, op.generation));
      ++in_kernel;
      return;
    }
  }
  if (shutting_down) {
    if (op.kind == RingOp::accept && res >= 0) ::close(res);
    state.discard(i);  // a connect's stream closes with the record
    return;
  }
  if (op.engine_word & kQueued) return cancelled_done(state, i, res);
  complete_with(state, i, res);
}

void UringRing::State::complete_with(RingState& state, OpIndex i, int res) noexcept {
  OpRecord& op = state.op(i);
  if (res < 0) {
    const int err = -res;
    if (op.kind == RingOp::timeout && err == ETIME) return state.complete(i, {}, 0);
    if (op.kind == RingOp::connect) op.stream.reset();
    return state.complete(i, err == ECANCELED ? canceled() : errno_code(err), 0);
  }
  switch (op.kind) {
    case RingOp::accept: {
      op.stream.emplace(SocketAccess::adopt_tcp_stream(res));
      const OpExtra* x = extra_of(i);
      if (auto peer = posix::to_socket_addr(x->addr)) op.addr = *peer;
      return state.complete(i, {}, 0);
    }
    case RingOp::recv_from: {
      OpExtra* x = extra_of(i);
      x->addr.len = x->msg.msg_namelen;
      if (auto peer = posix::to_socket_addr(x->addr)) op.addr = *peer;
      break;
    }
    case RingOp::connect:
    case RingOp::timeout: return state.complete(i, {}, 0);
    default: break;
  }
  state.complete(i, {}, static_cast<std::size_t>(res));
}

// ---- The engine's contract --------------------------------------------------------

std::error_code UringRing::run(RingState& state, TimeoutNs timeout) {
  State& s = *s_;
  if (state.has_cancels()) state.drain_cancels([&](OpIndex i) { s.withdraw(state, i); });
  if (state.has_submissions()) state.drain_submissions([&](OpIndex i) { s.start(state, i); });
  s.refill();
  if (!s.wake_armed) s.arm_wake();

  int r = 0;
  if (state.has_output() || timeout == 0) {
    // Submit, and let the kernel run the task work that posts completions,
    // without waiting. With output already there and nothing to submit, the
    // CQ is read without a system call.
    if (io_uring_sq_ready(&s.ring) > 0 || !state.has_output())
      r = io_uring_submit_and_get_events(&s.ring);
  } else {
    io_uring_cqe* cqe = nullptr;
    __kernel_timespec ts{};
    if (timeout > 0) {
      ts.tv_sec = timeout / 1'000'000'000;
      ts.tv_nsec = timeout % 1'000'000'000;
    }
    r = io_uring_submit_and_wait_timeout(&s.ring, &cqe, 1, timeout > 0 ? &ts : nullptr, nullptr);
  }
  if (io_uring_sq_ready(&s.ring) == 0) s.iov_used = 0;
  s.reap(state);
  // ETIME: the wait timed out; EINTR: a signal. EBUSY/EAGAIN: the kernel
  // wanted the CQ drained first, which reap() just did. The core loops.
  if (r < 0 && r != -ETIME && r != -EINTR && r != -EBUSY && r != -EAGAIN) return errno_code(-r);
  return {};
}

std::error_code UringRing::notify() noexcept {
  const std::uint64_t one = 1;
  // EAGAIN: the counter is full, so a wake-up is pending anyway. The counter
  // is never drained: the multishot poll reports each write's wake-up.
  if (::write(s_->wakefd, &one, sizeof one) < 0 && errno != EAGAIN) return errno_code();
  return {};
}

void UringRing::shutdown(RingState& state) noexcept {
  State& s = *s_;
  s.shutting_down = true;
  // Everything the kernel holds is cancelled, and every CQE waited for: only
  // then may buffers, sockets and pools go.
  bool cancel_sent = false;
  while (s.in_kernel > 0) {
    if (!cancel_sent) {
      if (io_uring_sqe* q = s.sqe()) {
        io_uring_prep_cancel64(q, 0, IORING_ASYNC_CANCEL_ANY);
        io_uring_sqe_set_data64(q, kIgnoreData);
        cancel_sent = true;
      }
    }
    io_uring_cqe* cqe = nullptr;
    // An operation the cancel found running (EALREADY) finishes on its own;
    // every 100 ms the cancel goes again for any that started since.
    __kernel_timespec ts{0, 100'000'000};
    const int r = io_uring_submit_and_wait_timeout(&s.ring, &cqe, 1, &ts, nullptr);
    s.reap(state);
    if (r == -ETIME) cancel_sent = false;
    if (r < 0 && r != -ETIME && r != -EINTR && r != -EBUSY && r != -EAGAIN) break;  // a broken ring
  }
  s.cancel_head = s.cancel_tail = no_op;
  state.for_each_in_engine([&](OpIndex i) { state.discard(i); });
}

void UringRing::forget_pool(PoolState& pool) noexcept {
  if (!pool.engine_tag) return;
  State& s = *s_;
  BufRing& b = s.bufrings[pool.engine_tag - 1];
  io_uring_unregister_buf_ring(&s.ring, static_cast<int>(pool.engine_tag));
  ::munmap(b.ring, b.bytes);
  b = BufRing{};
  // What the kernel's ring held is free again: every buffer not lent.
  pool.free_ids.clear();
  for (std::uint32_t id = pool.count; id-- > 0;)
    if (!pool.lent[id]) pool.free_ids.push_back(id);
  pool.provided = 0;
  pool.engine_tag = 0;
}

}  // namespace evq::detail
