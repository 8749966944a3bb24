// kvhygiene.hpp — header-only C++17 RAII wrapper over the kvhygiene C ABI.
//
//   #include <kvhygiene.hpp>            // needs kvhygiene.h on the include path
//   kvh::Tracer tr = kvh::Tracer::open(kvh::Config().log_path("kv.log"));
//   kvh::Buffer b = tr.allocate(kvh::Alloc::host(4096).ids("tenant", "req", "model"));
//   b.mark_in_use();
//   double cov = b.sanitize();          // zeroize + full read-back
//   b.free();                           // or let the destructor sanitize + free
//
// Ownership model
//   kvh::Tracer, kvh::Buffer and kvh::Pool are move-only owners. A moved-from (or
//   closed/freed/released) owner is inert: its destructor does nothing and its
//   operations fail with a status (never touch the C library with a stale handle).
//   Buffers and pools keep the tracer's state alive: the C tracer is closed when
//   the last of {Tracer, its Buffers, its Pools} is destroyed, so buffer destructors
//   always run against an open tracer. Tracer::close() closes it at once; owners
//   outliving it then fail with KVH_E_CLOSED (and report, from destructors).
//
// Destructors never throw. ~Buffer sanitizes (full verification) and frees; if that
// fails the buffer is quarantined and a kvh::Failure is reported to the tracer's
// failure handler, else to the process-wide one (kvh::set_failure_handler; the
// default writes one line to stderr). ~Pool unregisters with force (zeroizing
// blocks still assigned). ~Tracer (last owner) closes the tracer.
//
// Errors
//   Every operation has a non-throwing try_* form returning kvh::Result<T>
//   (status + kvh_last_error() text, or the value). With exceptions enabled the
//   plain form throws kvh::Error (a std::runtime_error carrying status() and the
//   message). The throwing API is compiled out with -fno-exceptions or when
//   KVH_NO_EXCEPTIONS is defined; Result<T>::value() then aborts on error.
//
// Threads
//   The library is thread-safe. One owner object must not be used by two threads
//   at once (like std:: types); different Buffers/Pools of one tracer may be used
//   concurrently. The tracer state is guarded by a shared mutex so close() never
//   races an operation into a dangling kvh_tracer*.
//
// Spans
//   kvh::span<const uint32_t> accepts std::vector, std::array, C arrays,
//   pointer+size, an initializer list (for a call argument) and, in C++20,
//   std::span.
#ifndef KVHYGIENE_HPP
#define KVHYGIENE_HPP

#include "kvhygiene.h"

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#if defined(__has_include)
#if __has_include(<version>)
#include <version>
#endif
#endif
#if defined(__cpp_lib_span) && __cpp_lib_span >= 202002L
#include <span>
#define KVH_HAS_STD_SPAN 1
#else
#define KVH_HAS_STD_SPAN 0
#endif

#if defined(KVH_NO_EXCEPTIONS) || !(defined(__cpp_exceptions) || defined(__EXCEPTIONS))
#define KVH_HAS_EXCEPTIONS 0
#else
#define KVH_HAS_EXCEPTIONS 1
#endif

namespace kvh {

// ---------------------------------------------------------------------------
// Status, enums
// ---------------------------------------------------------------------------

using status_t = kvh_status;

/// Name of a status ("KVH_E_FREED"); never null.
inline const char *status_name(status_t s) noexcept { return kvh_status_str(s); }

enum class Device : int32_t { cpu = KVH_DEVICE_CPU, cuda = KVH_DEVICE_CUDA };

enum class State : int32_t {
  allocated = KVH_STATE_ALLOCATED,
  bound = KVH_STATE_BOUND,
  in_use = KVH_STATE_IN_USE,
  sanitizing = KVH_STATE_SANITIZING,
  sanitized = KVH_STATE_SANITIZED,
  freed = KVH_STATE_FREED,
  quarantined = KVH_STATE_QUARANTINED
};

enum class VerifyMode : int32_t {
  tracer_default = KVH_VERIFY_DEFAULT,
  none = KVH_VERIFY_NONE,
  sampled = KVH_VERIFY_SAMPLED,
  full = KVH_VERIFY_FULL
};

enum class TtlMode : int32_t { from_alloc = KVH_TTL_FROM_ALLOC, from_last_use = KVH_TTL_FROM_LAST_USE };

enum class FsyncPolicy : int32_t {
  interval = KVH_FSYNC_INTERVAL,
  none = KVH_FSYNC_NONE,
  always = KVH_FSYNC_ALWAYS
};

// ---------------------------------------------------------------------------
// Small views
// ---------------------------------------------------------------------------

/// A minimal contiguous read-only view (std::span-like) for C++17.
template <class T>
class span {
 public:
  using element_type = T;
  using value_type = std::remove_cv_t<T>;
  using size_type = std::size_t;

  constexpr span() noexcept = default;
  constexpr span(T *data, std::size_t size) noexcept : data_(data), size_(size) {}
  template <std::size_t N>
  constexpr span(T (&arr)[N]) noexcept : data_(arr), size_(N) {}  // NOLINT(google-explicit-constructor)
  template <class U, std::size_t N,
            class = std::enable_if_t<std::is_convertible<U (*)[], T (*)[]>::value>>
  constexpr span(std::array<U, N> &arr) noexcept : data_(arr.data()), size_(N) {}  // NOLINT
  template <class U, std::size_t N,
            class = std::enable_if_t<std::is_convertible<const U (*)[], T (*)[]>::value>>
  constexpr span(const std::array<U, N> &arr) noexcept : data_(arr.data()), size_(N) {}  // NOLINT
  template <class U, class A,
            class = std::enable_if_t<std::is_convertible<U (*)[], T (*)[]>::value>>
  span(std::vector<U, A> &v) noexcept : data_(v.data()), size_(v.size()) {}  // NOLINT
  template <class U, class A,
            class = std::enable_if_t<std::is_convertible<const U (*)[], T (*)[]>::value>>
  span(const std::vector<U, A> &v) noexcept : data_(v.data()), size_(v.size()) {}  // NOLINT
  /// Valid for the full-expression only: use as a call argument.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Winit-list-lifetime"  // intended: a view of a call argument
#endif
  template <class U = T, class = std::enable_if_t<std::is_const<U>::value>>
  constexpr span(std::initializer_list<value_type> il) noexcept  // NOLINT
      : data_(il.begin()), size_(il.size()) {}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
#if KVH_HAS_STD_SPAN
  template <class U, std::size_t E,
            class = std::enable_if_t<std::is_convertible<U (*)[], T (*)[]>::value>>
  constexpr span(std::span<U, E> s) noexcept : data_(s.data()), size_(s.size()) {}  // NOLINT
#endif

  constexpr T *data() const noexcept { return data_; }
  constexpr std::size_t size() const noexcept { return size_; }
  constexpr bool empty() const noexcept { return size_ == 0; }
  constexpr T *begin() const noexcept { return data_; }
  constexpr T *end() const noexcept { return data_ + size_; }
  constexpr T &operator[](std::size_t i) const noexcept { return data_[i]; }

 private:
  T *data_ = nullptr;
  std::size_t size_ = 0;
};

/// Block ids of a paged pool.
using BlockIds = span<const uint32_t>;

/// A borrowed NUL-terminated string: from a string literal, const char* or
/// std::string. Default-constructed (or from nullptr) means "not given".
class zstring {
 public:
  constexpr zstring() noexcept = default;
  constexpr zstring(std::nullptr_t) noexcept {}       // NOLINT
  constexpr zstring(const char *s) noexcept : p_(s) {}  // NOLINT
  zstring(const std::string &s) noexcept : p_(s.c_str()) {}  // NOLINT
  constexpr const char *c_str() const noexcept { return p_; }
  constexpr bool given() const noexcept { return p_ != nullptr; }

 private:
  const char *p_ = nullptr;
};

// ---------------------------------------------------------------------------
// Errors and results
// ---------------------------------------------------------------------------

/// The last error message of the calling thread ("" if none).
inline std::string last_error() { return std::string(kvh_last_error()); }

namespace detail {
inline std::string format_error(status_t s, const std::string &msg) {
  std::string out = status_name(s);
  if (!msg.empty()) {
    out += ": ";
    out += msg;
  }
  return out;
}
}  // namespace detail

/// An error from the library (or the wrapper): status plus message.
class Error : public std::runtime_error {
 public:
  Error(status_t status, std::string message)
      : std::runtime_error(detail::format_error(status, message)),
        status_(status),
        message_(std::move(message)) {}
  /// The kvh_status (KVH_E_*).
  status_t status() const noexcept { return status_; }
  /// The status name, e.g. "KVH_E_FREED".
  const char *name() const noexcept { return status_name(status_); }
  /// The library's kvh_last_error() text (or the wrapper's message).
  const std::string &message() const noexcept { return message_; }

 private:
  status_t status_;
  std::string message_;
};

namespace detail {
[[noreturn]] inline void fail_value(status_t st, const std::string &msg) {
#if KVH_HAS_EXCEPTIONS
  throw Error(st, msg);
#else
  std::fprintf(stderr, "kvhygiene: Result::value() on an error: %s\n", format_error(st, msg).c_str());
  std::abort();
#endif
}
}  // namespace detail

template <class T>
class [[nodiscard]] Result;

/// Result<void>: a status and, on failure, the message.
template <>
class [[nodiscard]] Result<void> {
 public:
  Result() noexcept = default;  // KVH_OK
  Result(status_t status, std::string message) : status_(status), message_(std::move(message)) {}
  static Result failure(status_t status, std::string message) {
    return Result(status, std::move(message));
  }
  /// A failure with the calling thread's kvh_last_error() text.
  static Result from_last(status_t status) { return Result(status, last_error()); }

  bool ok() const noexcept { return status_ == KVH_OK; }
  explicit operator bool() const noexcept { return ok(); }
  status_t status() const noexcept { return status_; }
  const std::string &message() const noexcept { return message_; }
  std::string to_string() const { return ok() ? std::string("KVH_OK") : detail::format_error(status_, message_); }
  /// Throws kvh::Error (aborts without exceptions) when not ok().
  void value() const {
    if (!ok()) detail::fail_value(status_, message_);
  }
#if KVH_HAS_EXCEPTIONS
  Error error() const { return Error(status_, message_); }
#endif

 private:
  status_t status_ = KVH_OK;
  std::string message_;
};

using Status = Result<void>;

/// Result<T>: a value or (status, message).
template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : status_(KVH_OK), value_(std::move(value)) {}  // NOLINT
  Result(status_t status, std::string message) : status_(status), message_(std::move(message)) {
    if (status_ == KVH_OK) {
      status_ = KVH_E_INTERNAL;
      message_ = "kvh::Result: failure constructed with KVH_OK";
    }
  }
  Result(const Result<void> &err) : Result(err.status(), err.message()) {}  // NOLINT
  static Result failure(status_t status, std::string message) { return Result(status, std::move(message)); }

  bool ok() const noexcept { return status_ == KVH_OK; }
  explicit operator bool() const noexcept { return ok(); }
  status_t status() const noexcept { return status_; }
  const std::string &message() const noexcept { return message_; }
  std::string to_string() const { return ok() ? std::string("KVH_OK") : detail::format_error(status_, message_); }

  /// The value; throws kvh::Error (aborts without exceptions) when not ok().
  T &value() & {
    if (!ok()) detail::fail_value(status_, message_);
    return *value_;
  }
  const T &value() const & {
    if (!ok()) detail::fail_value(status_, message_);
    return *value_;
  }
  T &&value() && {
    if (!ok()) detail::fail_value(status_, message_);
    return std::move(*value_);
  }
  template <class U>
  T value_or(U &&fallback) && {
    return ok() ? std::move(*value_) : static_cast<T>(std::forward<U>(fallback));
  }
  template <class U>
  T value_or(U &&fallback) const & {
    return ok() ? *value_ : static_cast<T>(std::forward<U>(fallback));
  }
  T *operator->() { return &value(); }
  const T *operator->() const { return &value(); }
  T &operator*() & { return value(); }
  const T &operator*() const & { return value(); }
  /// The error part (status + message) as a Result<void>.
  Result<void> status_only() const { return ok() ? Result<void>() : Result<void>(status_, message_); }
#if KVH_HAS_EXCEPTIONS
  Error error() const { return Error(status_, message_); }
#endif

 private:
  status_t status_;
  std::string message_;
  std::optional<T> value_;
};

// ---------------------------------------------------------------------------
// Version
// ---------------------------------------------------------------------------

/// "MAJOR.MINOR.PATCH" of the loaded library.
inline const char *version() noexcept { return kvh_version(); }
/// MAJOR*10000 + MINOR*100 + PATCH of the loaded library.
inline uint32_t version_number() noexcept { return kvh_version_number(); }

/// KVH_OK when the loaded library's major version equals this header's
/// KVH_VERSION_MAJOR; KVH_E_UNSUPPORTED (naming both) otherwise.
[[nodiscard]] inline Status try_check_version() {
  const uint32_t loaded = kvh_version_number();
  if (loaded / 10000 != static_cast<uint32_t>(KVH_VERSION_MAJOR)) {
    return Status::failure(KVH_E_UNSUPPORTED,
                           "kvh: header major version " + std::to_string(KVH_VERSION_MAJOR) +
                               " cannot use the loaded library " + kvh_version() + " (major " +
                               std::to_string(loaded / 10000) + ")");
  }
  return Status();
}
#if KVH_HAS_EXCEPTIONS
inline void check_version() { try_check_version().value(); }
#endif

// ---------------------------------------------------------------------------
// Failure reporting (destructors)
// ---------------------------------------------------------------------------

/// What a destructor (or other non-throwing cleanup) could not do.
struct Failure {
  status_t status = KVH_OK;  ///< KVH_E_* of the failing call
  std::string operation;     ///< e.g. "kvh::Buffer::~Buffer: free"
  uint64_t handle = 0;       ///< buffer or pool handle (0 for the tracer)
  std::string message;       ///< kvh_last_error() text
  bool quarantined = false;  ///< the buffer was (or already is) quarantined
  std::string to_string() const {
    std::string s = operation + " (handle " + std::to_string(handle) + "): " + detail::format_error(status, message);
    if (quarantined) s += " [quarantined]";
    return s;
  }
};

using FailureHandler = std::function<void(const Failure &)>;

namespace detail {
struct GlobalHandler {
  std::mutex mu;
  FailureHandler fn;
};
inline GlobalHandler &global_handler() {
  static GlobalHandler *g = new GlobalHandler();  // never destroyed: usable from static destructors
  return *g;
}
inline void default_report(const Failure &f) noexcept {
  std::fprintf(stderr, "kvhygiene: %s\n", f.to_string().c_str());
}
}  // namespace detail

/// Set the process-wide failure handler (nullptr restores the default, which
/// writes one line to stderr). Returns the previous handler. Handlers run on the
/// thread of the destructor; exceptions they throw are swallowed.
inline FailureHandler set_failure_handler(FailureHandler fn) {
  auto &g = detail::global_handler();
  std::lock_guard<std::mutex> lk(g.mu);
  FailureHandler old = std::move(g.fn);
  g.fn = std::move(fn);
  return old;
}

namespace detail {
inline void invoke_handler(const FailureHandler &fn, const Failure &f) noexcept {
#if KVH_HAS_EXCEPTIONS
  try {
    fn(f);
  } catch (...) {
    default_report(f);
  }
#else
  fn(f);
#endif
}

inline void report_global(const Failure &f) noexcept {
  FailureHandler fn;
  {
    auto &g = global_handler();
    std::lock_guard<std::mutex> lk(g.mu);
    fn = g.fn;
  }
  if (fn) {
    invoke_handler(fn, f);
  } else {
    default_report(f);
  }
}

// The shared tracer state: the C tracer pointer, guarded so close() cannot race
// an operation, plus the per-tracer failure handler.
struct TracerState {
  std::shared_mutex mu;
  kvh_tracer *tr = nullptr;
  std::mutex handler_mu;
  FailureHandler handler;

  explicit TracerState(kvh_tracer *t) noexcept : tr(t) {}
  TracerState(const TracerState &) = delete;
  TracerState &operator=(const TracerState &) = delete;

  void report(const Failure &f) noexcept {
    FailureHandler fn;
    {
      std::lock_guard<std::mutex> lk(handler_mu);
      fn = handler;
    }
    if (fn) {
      invoke_handler(fn, f);
    } else {
      report_global(f);
    }
  }

  // Calls f(tr) under the shared lock; KVH_E_CLOSED without calling when closed.
  // On failure the message is read on this thread right after the call.
  template <class F>
  Status call(const char *what, F &&f) {
    std::shared_lock<std::shared_mutex> lk(mu);
    if (tr == nullptr) return Status::failure(KVH_E_CLOSED, std::string(what) + ": tracer is closed");
    const status_t st = f(tr);
    if (st != KVH_OK) return Status::from_last(st);
    return Status();
  }

  Status close() {
    std::unique_lock<std::shared_mutex> lk(mu);
    if (tr == nullptr) return Status::failure(KVH_E_CLOSED, "kvh::Tracer::close: tracer is already closed");
    kvh_tracer *t = tr;
    tr = nullptr;  // the pointer is invalid after kvh_tracer_close, whatever it returns
    const status_t st = kvh_tracer_close(t);
    if (st != KVH_OK) return Status::from_last(st);
    return Status();
  }

  ~TracerState() {
    if (tr != nullptr) {
      Status s = close();
      if (!s.ok()) report(Failure{s.status(), "kvh::Tracer: close", 0, s.message(), false});
    }
  }
};

using StatePtr = std::shared_ptr<TracerState>;

inline Status empty_owner(const char *what, const char *reason, status_t st) {
  return Status::failure(st, std::string(what) + ": " + reason);
}
}  // namespace detail

// ---------------------------------------------------------------------------
// Config
// ---------------------------------------------------------------------------

/// Tracer configuration builder. Unset fields take kvh_config_init()'s
/// defaults (which read the seed's environment variables); set fields win.
/// The builder owns copies of every string, so it may be a temporary.
class Config {
 public:
  Config() = default;

  Config &log_path(std::string p) { log_path_ = std::move(p); return *this; }
  Config &hmac_key(std::string key) { hmac_key_ = std::move(key); return *this; }
  Config &hmac_key(const uint8_t *key, std::size_t len) {
    hmac_key_ = std::string(reinterpret_cast<const char *>(key), len);
    return *this;
  }
  Config &hmac_key_id(std::string kid) { hmac_key_id_ = std::move(kid); return *this; }
  Config &coverage_threshold(double pct) { coverage_threshold_ = pct; return *this; }
  Config &max_log_bytes(uint64_t n) { max_log_bytes_ = n; return *this; }
  Config &double_pass_default(bool on) { double_pass_default_ = on; return *this; }
  Config &verify_samples_default(int32_t n) { verify_samples_default_ = n; return *this; }
  Config &verify_default(VerifyMode m) { verify_default_ = m; return *this; }
  Config &default_max_reuse(int64_t n) { default_max_reuse_ = n; return *this; }
  Config &default_ttl(double seconds) { default_ttl_ = seconds; return *this; }
  Config &no_default_ttl() { default_ttl_.reset(); no_default_ttl_ = true; return *this; }
  Config &ttl_mode(TtlMode m) { ttl_mode_ = m; return *this; }
  Config &sweep_interval_ms(uint32_t ms) { sweep_interval_ms_ = ms; return *this; }
  Config &fsync_policy(FsyncPolicy p) { fsync_policy_ = p; return *this; }
  Config &fsync_interval_ms(uint32_t ms) { fsync_interval_ms_ = ms; return *this; }
  Config &checkpoint(std::string dir, std::string key_path) {
    checkpoint_dir_ = std::move(dir);
    checkpoint_key_path_ = std::move(key_path);
    return *this;
  }
  Config &checkpoint_every_records(uint32_t n) { checkpoint_every_records_ = n; return *this; }
  Config &checkpoint_every_ms(uint32_t ms) { checkpoint_every_ms_ = ms; return *this; }
  Config &metrics_tenant_labels(bool on) { metrics_tenant_labels_ = on; return *this; }
  /// The tracer prunes its own rotated log files: older than `days` (0 = no
  /// age limit), beyond `max_rotated` files (-1 = no limit, 0 = keep none),
  /// moved to `archive_dir` when it is not empty. Each removal is declared by
  /// a "prune" record first.
  Config &retention(double days, int32_t max_rotated, std::string archive_dir = {}) {
    retention_days_ = days;
    max_rotated_ = max_rotated;
    archive_dir_ = std::move(archive_dir);
    return *this;
  }
  /// Forward-secure MAC: the sealing-key state file from `kvgate fs-keygen`
  /// (exclusive with hmac_key). Each epoch's key is overwritten by the next.
  Config &fs_state_path(std::string path) { fs_state_path_ = std::move(path); return *this; }
  /// Overrides struct_size (tests of the library's KVH_E_STRUCT_SIZE check).
  Config &struct_size_override(uint32_t n) { struct_size_ = n; return *this; }

  /// kvh_config_init() then the fields set here. String fields of *out point
  /// into this Config: keep it alive and unchanged while *out is used.
  [[nodiscard]] Status fill(kvh_config *out) const {
    if (out == nullptr) return Status::failure(KVH_E_NULL_ARG, "kvh::Config::fill: out is null");
    *out = kvh_config{};
    out->struct_size = sizeof(kvh_config);
    const status_t st = kvh_config_init(out, sizeof *out);
    if (st != KVH_OK) return Status::from_last(st);
    if (log_path_) out->log_path = log_path_->c_str();
    if (hmac_key_) {
      out->hmac_key = reinterpret_cast<const uint8_t *>(hmac_key_->data());
      out->hmac_key_len = hmac_key_->size();
    }
    if (hmac_key_id_) out->hmac_key_id = hmac_key_id_->c_str();
    if (coverage_threshold_) out->coverage_threshold = *coverage_threshold_;
    if (max_log_bytes_) out->max_log_bytes = *max_log_bytes_;
    if (double_pass_default_) out->double_pass_default = *double_pass_default_ ? 1 : 0;
    if (verify_samples_default_) out->verify_samples_default = *verify_samples_default_;
    if (verify_default_) out->verify_default = static_cast<int32_t>(*verify_default_);
    if (default_max_reuse_) out->default_max_reuse = *default_max_reuse_;
    if (default_ttl_) {
      out->default_ttl_sec = *default_ttl_;
      out->has_default_ttl = 1;
    } else if (no_default_ttl_) {
      out->has_default_ttl = 0;
    }
    if (ttl_mode_) out->ttl_mode = static_cast<int32_t>(*ttl_mode_);
    if (sweep_interval_ms_) out->sweep_interval_ms = *sweep_interval_ms_;
    if (fsync_policy_) out->fsync_policy = static_cast<int32_t>(*fsync_policy_);
    if (fsync_interval_ms_) out->fsync_interval_ms = *fsync_interval_ms_;
    if (checkpoint_dir_) out->checkpoint_dir = checkpoint_dir_->c_str();
    if (checkpoint_key_path_) out->checkpoint_key_path = checkpoint_key_path_->c_str();
    if (checkpoint_every_records_) out->checkpoint_every_records = *checkpoint_every_records_;
    if (checkpoint_every_ms_) out->checkpoint_every_ms = *checkpoint_every_ms_;
    if (metrics_tenant_labels_) out->metrics_tenant_labels = *metrics_tenant_labels_ ? 1 : 0;
    if (retention_days_) {
      out->retention = 1;
      out->retention_days = *retention_days_;
      out->max_rotated = max_rotated_;
      if (!archive_dir_.empty()) out->archive_dir = archive_dir_.c_str();
    }
    if (fs_state_path_) out->fs_state_path = fs_state_path_->c_str();
    if (struct_size_) out->struct_size = *struct_size_;
    return Status();
  }

 private:
  std::optional<std::string> log_path_, hmac_key_, hmac_key_id_, checkpoint_dir_, checkpoint_key_path_,
      fs_state_path_;
  std::optional<double> coverage_threshold_, default_ttl_;
  bool no_default_ttl_ = false;
  std::optional<uint64_t> max_log_bytes_;
  std::optional<bool> double_pass_default_, metrics_tenant_labels_;
  std::optional<int32_t> verify_samples_default_;
  std::optional<VerifyMode> verify_default_;
  std::optional<int64_t> default_max_reuse_;
  std::optional<TtlMode> ttl_mode_;
  std::optional<uint32_t> sweep_interval_ms_, fsync_interval_ms_, checkpoint_every_records_, checkpoint_every_ms_;
  std::optional<FsyncPolicy> fsync_policy_;
  std::optional<uint32_t> struct_size_;
  std::optional<double> retention_days_;
  int32_t max_rotated_ = -1;
  std::string archive_dir_;
};

// ---------------------------------------------------------------------------
// Descriptors
// ---------------------------------------------------------------------------

/// Describes a region to tag (kvh_alloc_desc). Owns copies of its strings.
class Alloc {
 public:
  /// Library-owned hygienic host memory of nbytes (address via Buffer::data()).
  static Alloc host(uint64_t nbytes) { Alloc a; a.nbytes_ = nbytes; return a; }
  /// A caller-owned host region (the library zeroizes it; never frees it).
  static Alloc region(void *ptr, uint64_t nbytes) {
    Alloc a;
    a.ptr_ = static_cast<uint64_t>(reinterpret_cast<uintptr_t>(ptr));
    a.nbytes_ = nbytes;
    return a;
  }
  /// A CUDA device range (CUdeviceptr) on device `ordinal`, work on `stream`.
  static Alloc cuda(uint64_t devptr, uint64_t nbytes, int32_t ordinal = 0, uint64_t stream = 0) {
    Alloc a;
    a.ptr_ = devptr;
    a.nbytes_ = nbytes;
    a.device_ = Device::cuda;
    a.ordinal_ = ordinal;
    a.stream_ = stream;
    return a;
  }

  Alloc &ids(std::string tenant, std::string request, std::string model) {
    tenant_ = std::move(tenant);
    request_ = std::move(request);
    model_ = std::move(model);
    return *this;
  }
  Alloc &tenant(std::string s) { tenant_ = std::move(s); return *this; }
  Alloc &request(std::string s) { request_ = std::move(s); return *this; }
  Alloc &model(std::string s) { model_ = std::move(s); return *this; }
  Alloc &framework(std::string s) { framework_ = std::move(s); return *this; }
  /// Stream label recorded in the allocate record (the seed's "stream_id").
  Alloc &stream_id(std::string s) { stream_id_ = std::move(s); return *this; }
  Alloc &dtype(std::string s) { dtype_ = std::move(s); return *this; }
  Alloc &shape(std::vector<int64_t> s) { shape_ = std::move(s); return *this; }
  Alloc &ttl(double seconds) { ttl_ = seconds; return *this; }
  Alloc &max_reuse(int64_t n) { max_reuse_ = n; return *this; }
  Alloc &pinned(bool on = true) { pinned_ = on; return *this; }
  Alloc &stream(uint64_t s) { stream_ = s; return *this; }
  /// Overrides struct_size (tests of the library's KVH_E_STRUCT_SIZE check).
  Alloc &struct_size_override(uint32_t n) { struct_size_ = n; return *this; }

  /// The C descriptor; its strings point into this Alloc.
  kvh_alloc_desc capi() const noexcept {
    kvh_alloc_desc d{};
    d.struct_size = struct_size_ ? *struct_size_ : static_cast<uint32_t>(sizeof(kvh_alloc_desc));
    d.flags = (ttl_ ? KVH_ALLOC_HAS_TTL : 0u) | (max_reuse_ ? KVH_ALLOC_HAS_MAX_REUSE : 0u) |
              (pinned_ ? KVH_ALLOC_PINNED : 0u);
    d.ptr = ptr_;
    d.nbytes = nbytes_;
    d.device = static_cast<int32_t>(device_);
    d.device_ordinal = ordinal_;
    d.stream = stream_;
    d.tenant_id = tenant_.c_str();
    d.request_id = request_.c_str();
    d.model_id = model_.c_str();
    d.framework = framework_ ? framework_->c_str() : nullptr;
    d.stream_id = stream_id_ ? stream_id_->c_str() : nullptr;
    d.dtype = dtype_ ? dtype_->c_str() : nullptr;
    d.shape = shape_.empty() ? nullptr : shape_.data();
    d.shape_len = shape_.size();
    d.ttl_sec = ttl_ ? *ttl_ : 0.0;
    d.max_reuse = max_reuse_ ? *max_reuse_ : 0;
    return d;
  }

 private:
  uint64_t ptr_ = 0, nbytes_ = 0, stream_ = 0;
  Device device_ = Device::cpu;
  int32_t ordinal_ = 0;
  std::string tenant_, request_, model_;
  std::optional<std::string> framework_, dtype_, stream_id_;
  std::vector<int64_t> shape_;
  std::optional<double> ttl_;
  std::optional<int64_t> max_reuse_;
  bool pinned_ = false;
  std::optional<uint32_t> struct_size_;
};

/// Sanitize options (kvh_sanitize_opts).
class SanitizeOptions {
 public:
  SanitizeOptions() = default;
  /// Full read-back of every byte (what Buffer's destructor uses).
  static SanitizeOptions full() { return SanitizeOptions().verify(VerifyMode::full); }
  SanitizeOptions &verify(VerifyMode m) { verify_ = m; return *this; }
  SanitizeOptions &sampled(uint32_t samples) { verify_ = VerifyMode::sampled; samples_ = samples; return *this; }
  SanitizeOptions &double_pass(bool on) { double_pass_ = on; return *this; }
  SanitizeOptions &async(bool on = true) { async_ = on; return *this; }
  SanitizeOptions &stream(uint64_t s) { stream_ = s; return *this; }
  SanitizeOptions &struct_size_override(uint32_t n) { struct_size_ = n; return *this; }

  kvh_sanitize_opts capi() const noexcept {
    kvh_sanitize_opts o{};
    o.struct_size = struct_size_ ? *struct_size_ : static_cast<uint32_t>(sizeof(kvh_sanitize_opts));
    o.flags = (async_ ? KVH_SANITIZE_ASYNC : 0u) |
              (double_pass_ ? (*double_pass_ ? KVH_SANITIZE_DOUBLE_PASS : KVH_SANITIZE_NO_DOUBLE_PASS) : 0u) |
              (stream_ ? KVH_SANITIZE_USE_STREAM : 0u);
    o.verify = static_cast<int32_t>(verify_);
    o.samples = samples_;
    o.stream = stream_ ? *stream_ : 0;
    return o;
  }

 private:
  VerifyMode verify_ = VerifyMode::tracer_default;
  uint32_t samples_ = 0;
  std::optional<bool> double_pass_;
  bool async_ = false;
  std::optional<uint64_t> stream_;
  std::optional<uint32_t> struct_size_;
};

/// A paged KV layout (kvh_pool_desc). Owns copies of its regions and strings.
class PoolDesc {
 public:
  /// A host-memory pool of num_blocks blocks.
  static PoolDesc host(uint32_t num_blocks) { PoolDesc d; d.num_blocks_ = num_blocks; return d; }
  /// A CUDA pool on device `ordinal`, work on `stream`.
  static PoolDesc cuda(uint32_t num_blocks, int32_t ordinal = 0, uint64_t stream = 0) {
    PoolDesc d;
    d.num_blocks_ = num_blocks;
    d.device_ = Device::cuda;
    d.ordinal_ = ordinal;
    d.stream_ = stream;
    return d;
  }
  /// Block b of this entry is [base + b*block_stride, + block_bytes).
  PoolDesc &region(uint64_t base, uint64_t block_stride, uint64_t block_bytes) {
    regions_.push_back(kvh_pool_region{base, block_stride, block_bytes});
    return *this;
  }
  PoolDesc &region(const void *base, uint64_t block_stride, uint64_t block_bytes) {
    return region(static_cast<uint64_t>(reinterpret_cast<uintptr_t>(base)), block_stride, block_bytes);
  }
  PoolDesc &model(std::string s) { model_ = std::move(s); return *this; }
  PoolDesc &name(std::string s) { name_ = std::move(s); return *this; }
  PoolDesc &verify(VerifyMode m) { verify_ = m; return *this; }
  PoolDesc &struct_size_override(uint32_t n) { struct_size_ = n; return *this; }
  const std::vector<kvh_pool_region> &regions() const noexcept { return regions_; }
  uint32_t num_blocks() const noexcept { return num_blocks_; }

  /// The C descriptor; its pointers point into this PoolDesc.
  kvh_pool_desc capi() const noexcept {
    kvh_pool_desc d{};
    d.struct_size = struct_size_ ? *struct_size_ : static_cast<uint32_t>(sizeof(kvh_pool_desc));
    d.device = static_cast<int32_t>(device_);
    d.device_ordinal = ordinal_;
    d.num_blocks = num_blocks_;
    d.stream = stream_;
    d.regions = regions_.empty() ? nullptr : regions_.data();
    d.num_regions = regions_.size();
    d.model_id = model_.c_str();
    d.name = name_ ? name_->c_str() : nullptr;
    d.verify = static_cast<int32_t>(verify_);
    return d;
  }

 private:
  Device device_ = Device::cpu;
  int32_t ordinal_ = 0;
  uint32_t num_blocks_ = 0;
  uint64_t stream_ = 0;
  std::vector<kvh_pool_region> regions_;
  std::string model_;
  std::optional<std::string> name_;
  VerifyMode verify_ = VerifyMode::tracer_default;
  std::optional<uint32_t> struct_size_;
};

/// kvh_buffer_info with std::string ids.
struct BufferInfo {
  State state = State::allocated;
  uint64_t ptr = 0;
  uint64_t nbytes = 0;
  Device device = Device::cpu;
  int32_t device_ordinal = 0;
  uint64_t stream = 0;
  double coverage_pct = 0;
  int64_t reuse_count = 0;
  int64_t max_reuse = 0;
  bool library_owned = false;
  bool locked = false;
  std::string tenant_id, request_id, model_id;
};

/// Result of verifying a forensic log.
struct LogVerification {
  bool ok = false;
  uint64_t records = 0;
  std::string report;  ///< {"ok":..,"records":..,"failures":[...]}
};

/// Options for log verification (kvh_verify_opts).
class LogVerifyOptions {
 public:
  LogVerifyOptions &all_files(bool on = true) { all_ = on; return *this; }
  LogVerifyOptions &hmac_key(std::string key) { key_ = std::move(key); return *this; }
  LogVerifyOptions &checkpoints(std::string dir, std::string public_key) {
    checkpoint_dir_ = std::move(dir);
    public_key_ = std::move(public_key);
    return *this;
  }
  /// A forward-secure log: the verification key text (`kvgate fs-keygen`) and,
  /// when not 0, the verifier's time in Unix seconds, from which every epoch
  /// that ended more than one epoch earlier must be sealed (detects a log cut
  /// back to an earlier epoch).
  LogVerifyOptions &fs_key(std::string verify_key, int64_t now_unix = 0) {
    fs_key_ = std::move(verify_key);
    fs_now_ = now_unix;
    return *this;
  }
  kvh_verify_opts capi() const noexcept {
    kvh_verify_opts o{};
    o.struct_size = sizeof(kvh_verify_opts);
    o.flags = all_ ? KVH_LOGVERIFY_ALL : 0u;
    o.hmac_key = key_ ? reinterpret_cast<const uint8_t *>(key_->data()) : nullptr;
    o.hmac_key_len = key_ ? key_->size() : 0;
    o.checkpoint_dir = checkpoint_dir_ ? checkpoint_dir_->c_str() : nullptr;
    o.public_key = public_key_ ? public_key_->c_str() : nullptr;
    o.fs_verify_key = fs_key_ ? fs_key_->c_str() : nullptr;
    o.fs_now_unix = fs_now_;
    return o;
  }

 private:
  bool all_ = false;
  int64_t fs_now_ = 0;
  std::optional<std::string> key_, checkpoint_dir_, public_key_, fs_key_;
};

/// Verify a forensic log file (all rotated files with all_files()).
/// An invalid chain is not an error: ok is false and report says why.
[[nodiscard]] inline Result<LogVerification> try_log_verify(const std::string &path,
                                                            const LogVerifyOptions &opts = {}) {
  const kvh_verify_opts o = opts.capi();
  LogVerification out;
  int32_t ok = 0;
  size_t need = 0;
  status_t st = kvh_log_verify(path.c_str(), &o, &ok, &out.records, nullptr, 0, &need);
  for (int attempt = 0; attempt < 4 && (st == KVH_OK || st == KVH_E_BUFFER_TOO_SMALL); ++attempt) {
    std::string buf(need + 1, '\0');
    size_t len = 0;
    st = kvh_log_verify(path.c_str(), &o, &ok, &out.records, &buf[0], buf.size(), &len);
    if (st == KVH_OK) {
      buf.resize(len);
      out.report = std::move(buf);
      out.ok = ok != 0;
      return out;
    }
    need = len;  // the report grew (file appended meanwhile): retry with the new size
  }
  return Result<LogVerification>(st, last_error());
}
#if KVH_HAS_EXCEPTIONS
inline LogVerification log_verify(const std::string &path, const LogVerifyOptions &opts = {}) {
  return try_log_verify(path, opts).value();
}
#endif

class Tracer;

namespace detail {

/// What Buffer and Pool share: the handle, the tracer state it belongs to, and
/// why the owner is empty when it is. Each owner keeps its own dispose().
class HandleOwner {
 public:
  /// True while this object owns a live handle.
  explicit operator bool() const noexcept { return h_ != 0; }
  uint64_t handle() const noexcept { return h_; }
  /// The raw handle (escape hatch; still owned by this object).
  uint64_t capi() const noexcept { return h_; }
  /// The raw tracer (escape hatch; null when empty or closed). Do not close it.
  kvh_tracer *tracer_capi() const noexcept {
    if (!st_) return nullptr;
    std::shared_lock<std::shared_mutex> lk(st_->mu);
    return st_->tr;
  }
  /// Give up ownership: the handle is returned and nothing is done on destruction.
  [[nodiscard]] uint64_t release() noexcept {
    const uint64_t h = h_;
    h_ = 0;
    why_ = "released";
    st_.reset();
    return h;
  }

 protected:
  HandleOwner() noexcept = default;
  HandleOwner(StatePtr st, uint64_t h) noexcept : st_(std::move(st)), h_(h) {}
  // Takes o's handle and state; o becomes an empty "moved-from" owner.
  void take(HandleOwner &o) noexcept {
    st_ = std::move(o.st_);
    h_ = o.h_;
    why_ = o.why_;
    o.h_ = 0;
    o.why_ = "moved-from";
  }

  StatePtr st_;
  uint64_t h_ = 0;
  const char *why_ = "empty (default-constructed)";
};

}  // namespace detail

// ---------------------------------------------------------------------------
// Buffer
// ---------------------------------------------------------------------------

/// Move-only owner of one tagged region. The destructor sanitizes (full
/// verification) and frees; on failure the buffer is quarantined and a Failure
/// is reported. Never throws from the destructor.
class Buffer : public detail::HandleOwner {
 public:
  Buffer() noexcept = default;
  Buffer(const Buffer &) = delete;
  Buffer &operator=(const Buffer &) = delete;
  Buffer(Buffer &&o) noexcept : freed_(o.freed_) {
    take(o);
    o.freed_ = false;
  }
  Buffer &operator=(Buffer &&o) noexcept {
    if (this != &o) {
      dispose();
      take(o);
      freed_ = o.freed_;
      o.freed_ = false;
    }
    return *this;
  }
  ~Buffer() { dispose(); }

  [[nodiscard]] Status try_bind(zstring tenant = {}, zstring stream_id = {}) {
    return call("kvh::Buffer::bind", [&](kvh_tracer *t) { return kvh_bind(t, h_, tenant.c_str(), stream_id.c_str()); });
  }
  [[nodiscard]] Status try_mark_in_use(zstring tenant = {}) {
    return call("kvh::Buffer::mark_in_use", [&](kvh_tracer *t) { return kvh_mark_in_use(t, h_, tenant.c_str()); });
  }
  [[nodiscard]] Status try_mark_reuse(zstring tenant = {}) {
    return call("kvh::Buffer::mark_reuse", [&](kvh_tracer *t) { return kvh_mark_reuse(t, h_, tenant.c_str()); });
  }
  /// Zeroize + verify; the attested coverage in percent.
  [[nodiscard]] Result<double> try_sanitize(const SanitizeOptions &opts = {}) {
    const kvh_sanitize_opts o = opts.capi();
    double cov = 0;
    Status s = call("kvh::Buffer::sanitize", [&](kvh_tracer *t) { return kvh_sanitize(t, h_, &o, &cov); });
    if (!s) return s;
    return cov;
  }
  /// Complete an async sanitize; the attested coverage.
  [[nodiscard]] Result<double> try_wait() {
    double cov = 0;
    Status s = call("kvh::Buffer::wait", [&](kvh_tracer *t) { return kvh_wait(t, h_, &cov); });
    if (!s) return s;
    return cov;
  }
  /// Last attested coverage in percent (0 if never sanitized).
  [[nodiscard]] Result<double> try_coverage() {
    double cov = 0;
    Status s = call("kvh::Buffer::coverage", [&](kvh_tracer *t) { return kvh_attest_coverage(t, h_, &cov); });
    if (!s) return s;
    return cov;
  }
  [[nodiscard]] Status try_quarantine(zstring reason) {
    return call("kvh::Buffer::quarantine", [&](kvh_tracer *t) { return kvh_quarantine(t, h_, reason.c_str()); });
  }
  [[nodiscard]] Status try_release_quarantine(zstring reason) {
    return call("kvh::Buffer::release_quarantine",
                [&](kvh_tracer *t) { return kvh_release_quarantine(t, h_, reason.c_str()); });
  }
  /// Free (requires a passing sanitize). On success this object becomes empty;
  /// on failure it keeps the (now quarantined) handle.
  [[nodiscard]] Status try_free() {
    Status s = call("kvh::Buffer::free", [&](kvh_tracer *t) { return kvh_free(t, h_); });
    if (s) {
      h_ = 0;
      why_ = "already freed";
      freed_ = true;
      st_.reset();
    }
    return s;
  }
  [[nodiscard]] Result<BufferInfo> try_info() const {
    kvh_buffer_info ci{};
    ci.struct_size = sizeof(kvh_buffer_info);
    Status s = const_cast<Buffer *>(this)->call(
        "kvh::Buffer::info", [&](kvh_tracer *t) { return kvh_buffer_info_get(t, h_, &ci); });
    if (!s) return s;
    BufferInfo bi;
    bi.state = static_cast<State>(ci.state);
    bi.ptr = ci.ptr;
    bi.nbytes = ci.nbytes;
    bi.device = static_cast<Device>(ci.device);
    bi.device_ordinal = ci.device_ordinal;
    bi.stream = ci.stream;
    bi.coverage_pct = ci.coverage_pct;
    bi.reuse_count = ci.reuse_count;
    bi.max_reuse = ci.max_reuse;
    bi.library_owned = ci.library_owned != 0;
    bi.locked = ci.locked != 0;
    bi.tenant_id = ci.tenant_id;
    bi.request_id = ci.request_id;
    bi.model_id = ci.model_id;
    return bi;
  }
  /// The region's host address (library-owned memory: valid until free).
  [[nodiscard]] Result<void *> try_data() const {
    Result<BufferInfo> i = try_info();
    if (!i) return i.status_only();
    return reinterpret_cast<void *>(static_cast<uintptr_t>(i->ptr));
  }

#if KVH_HAS_EXCEPTIONS
  void bind(zstring tenant = {}, zstring stream_id = {}) { try_bind(tenant, stream_id).value(); }
  void mark_in_use(zstring tenant = {}) { try_mark_in_use(tenant).value(); }
  void mark_reuse(zstring tenant = {}) { try_mark_reuse(tenant).value(); }
  double sanitize(const SanitizeOptions &opts = {}) { return try_sanitize(opts).value(); }
  double wait() { return try_wait().value(); }
  double coverage() { return try_coverage().value(); }
  void quarantine(zstring reason) { try_quarantine(reason).value(); }
  void release_quarantine(zstring reason) { try_release_quarantine(reason).value(); }
  void free() { try_free().value(); }
  BufferInfo info() const { return try_info().value(); }
  void *data() const { return try_data().value(); }
#endif

 private:
  friend class Tracer;
  Buffer(detail::StatePtr st, uint64_t h) noexcept : HandleOwner(std::move(st), h) {}

  template <class F>
  Status call(const char *what, F &&f) {
    if (h_ == 0) return detail::empty_owner(what, why_, freed_ ? KVH_E_FREED : KVH_E_UNKNOWN_HANDLE);
    return st_->call(what, std::forward<F>(f));
  }

  // Sanitize (full) + free; on failure quarantine + report. Never throws.
  void dispose() noexcept {
    if (h_ == 0) return;
    detail::StatePtr st = std::move(st_);
    const uint64_t h = h_;
    h_ = 0;
    why_ = "disposed";
    const char *op = "kvh::Buffer::~Buffer: sanitize";
    Status s = Status();
#if KVH_HAS_EXCEPTIONS
    try {
#endif
      const kvh_sanitize_opts o = SanitizeOptions::full().capi();
      s = st->call(op, [&](kvh_tracer *t) {
        double cov = 0;
        status_t r = kvh_sanitize(t, h, &o, &cov);
        if (r == KVH_E_PENDING) {  // an async sanitize is still in flight: complete it, redo
          (void)kvh_wait(t, h, &cov);
          r = kvh_sanitize(t, h, &o, &cov);
        }
        return r;
      });
      if (s) {
        op = "kvh::Buffer::~Buffer: free";
        s = st->call(op, [&](kvh_tracer *t) { return kvh_free(t, h); });
      }
      if (!s) {
        Failure f{s.status(), op, h, s.message(), false};
        if (s.status() != KVH_E_CLOSED && s.status() != KVH_E_FREED) {
          // The library quarantines on most refusals; quarantine explicitly otherwise.
          kvh_buffer_info bi{};
          bi.struct_size = sizeof(kvh_buffer_info);
          Status i = st->call(op, [&](kvh_tracer *t) { return kvh_buffer_info_get(t, h, &bi); });
          if (i && bi.state == KVH_STATE_QUARANTINED) {
            f.quarantined = true;
          } else {
            Status q = st->call("kvh::Buffer::~Buffer: quarantine",
                                [&](kvh_tracer *t) { return kvh_quarantine(t, h, "raii_dispose_failed"); });
            f.quarantined = q.ok();
            if (!q) f.message += "; quarantine also failed: " + q.to_string();
          }
        }
        st->report(f);
      }
#if KVH_HAS_EXCEPTIONS
    } catch (...) {
      detail::report_global(Failure{KVH_E_INTERNAL, op, h, "exception while disposing", false});
    }
#endif
  }

  bool freed_ = false;
};

// ---------------------------------------------------------------------------
// Pool
// ---------------------------------------------------------------------------

/// Move-only owner of a registered paged KV layout. The destructor unregisters
/// with force (blocks still assigned are zeroized); failures are reported.
/// The memory the pool describes must outlive the Pool.
class Pool : public detail::HandleOwner {
 public:
  Pool() noexcept = default;
  Pool(const Pool &) = delete;
  Pool &operator=(const Pool &) = delete;
  Pool(Pool &&o) noexcept { take(o); }
  Pool &operator=(Pool &&o) noexcept {
    if (this != &o) {
      dispose();
      take(o);
    }
    return *this;
  }
  ~Pool() { dispose(); }

  /// Assign blocks to tenant/request (all-or-nothing). A block last owned by
  /// another tenant and not sanitized since is KVH_E_ISOLATION (quarantined).
  [[nodiscard]] Status try_assign(BlockIds blocks, zstring tenant, zstring request) {
    return call("kvh::Pool::assign", [&](kvh_tracer *t) {
      return kvh_pool_assign(t, h_, blocks.data(), blocks.size(), tenant.c_str(), request.c_str());
    });
  }
  /// Zeroize + verify every region of the blocks; the coverage in percent.
  [[nodiscard]] Result<double> try_release(BlockIds blocks, uint32_t flags = 0) {
    double cov = 0;
    Status s = call("kvh::Pool::release", [&](kvh_tracer *t) {
      return kvh_pool_release(t, h_, blocks.data(), blocks.size(), flags, &cov);
    });
    if (!s) return s;
    return cov;
  }
  /// Return quarantined blocks to service: a full scrub of every region of
  /// every block, verified byte by byte; the blocks that read back zero become
  /// free and are logged with `reason`. KVH_E_VERIFY leaves the others
  /// quarantined; a block that is not quarantined is KVH_E_STATE.
  [[nodiscard]] Result<double> try_release_quarantine(BlockIds blocks, zstring reason) {
    double cov = 0;
    Status s = call("kvh::Pool::release_quarantine", [&](kvh_tracer *t) {
      return kvh_pool_release_quarantine(t, h_, blocks.data(), blocks.size(), reason.c_str(), &cov);
    });
    if (!s) return s;
    return cov;
  }
  /// Complete async releases; the lowest coverage among them (100 if none).
  [[nodiscard]] Result<double> try_sync() {
    double cov = 0;
    Status s = call("kvh::Pool::sync", [&](kvh_tracer *t) { return kvh_pool_sync(t, h_, &cov); });
    if (!s) return s;
    return cov;
  }
  /// Unregister; with force, blocks still assigned are zeroized (else KVH_E_STATE).
  /// On success this object becomes empty.
  [[nodiscard]] Status try_unregister(bool force = false) {
    Status s = call("kvh::Pool::unregister", [&](kvh_tracer *t) { return kvh_pool_unregister(t, h_, force ? 1 : 0); });
    if (s) {
      h_ = 0;
      why_ = "unregistered";
      st_.reset();
    }
    return s;
  }

#if KVH_HAS_EXCEPTIONS
  void assign(BlockIds blocks, zstring tenant, zstring request) { try_assign(blocks, tenant, request).value(); }
  double release(BlockIds blocks, uint32_t flags = 0) { return try_release(blocks, flags).value(); }
  double release_quarantine(BlockIds blocks, zstring reason) {
    return try_release_quarantine(blocks, reason).value();
  }
  double sync() { return try_sync().value(); }
  void unregister(bool force = false) { try_unregister(force).value(); }
#endif

 private:
  friend class Tracer;
  Pool(detail::StatePtr st, uint64_t h) noexcept : HandleOwner(std::move(st), h) {}

  template <class F>
  Status call(const char *what, F &&f) {
    if (h_ == 0) return detail::empty_owner(what, why_, KVH_E_UNKNOWN_HANDLE);
    return st_->call(what, std::forward<F>(f));
  }

  void dispose() noexcept {
    if (h_ == 0) return;
    detail::StatePtr st = std::move(st_);
    const uint64_t h = h_;
    h_ = 0;
    why_ = "unregistered";
#if KVH_HAS_EXCEPTIONS
    try {
#endif
      Status s = st->call("kvh::Pool::~Pool: unregister", [&](kvh_tracer *t) { return kvh_pool_unregister(t, h, 1); });
      if (!s) st->report(Failure{s.status(), "kvh::Pool::~Pool: unregister", h, s.message(), false});
#if KVH_HAS_EXCEPTIONS
    } catch (...) {
      detail::report_global(Failure{KVH_E_INTERNAL, "kvh::Pool::~Pool", h, "exception while disposing", false});
    }
#endif
  }

};

// ---------------------------------------------------------------------------
// Tracer
// ---------------------------------------------------------------------------

/// Move-only owner of a kvh_tracer. The C tracer is closed when the last of
/// this object and its Buffers/Pools is destroyed, or at once by close().
class Tracer {
 public:
  Tracer() noexcept = default;
  Tracer(const Tracer &) = delete;
  Tracer &operator=(const Tracer &) = delete;
  Tracer(Tracer &&) noexcept = default;
  Tracer &operator=(Tracer &&) noexcept = default;  // the previous state closes when its last owner goes
  ~Tracer() = default;

  /// Open a tracer (checks the library's major version first).
  [[nodiscard]] static Result<Tracer> try_open(const Config &cfg = Config()) {
    Status v = try_check_version();
    if (!v) return v;
    kvh_config c{};
    Status f = cfg.fill(&c);
    if (!f) return f;
    kvh_tracer *t = nullptr;
    const status_t st = kvh_tracer_open(&c, &t);
    if (st != KVH_OK) return Result<Tracer>(st, last_error());
    return Tracer(std::make_shared<detail::TracerState>(t));
  }
  /// Adopt a raw tracer from kvh_tracer_open (null gives an empty Tracer).
  static Tracer adopt(kvh_tracer *t) {
    return t == nullptr ? Tracer() : Tracer(std::make_shared<detail::TracerState>(t));
  }

  /// True while open (not moved-from, not closed).
  explicit operator bool() const noexcept { return capi() != nullptr; }
  /// The raw tracer (escape hatch; null when empty or closed). Do not close it.
  kvh_tracer *capi() const noexcept {
    if (!st_) return nullptr;
    std::shared_lock<std::shared_mutex> lk(st_->mu);
    return st_->tr;
  }

  /// Per-tracer failure handler (overrides the process-wide one for failures of
  /// this tracer's Buffers/Pools and of its close). nullptr: use the global one.
  void set_failure_handler(FailureHandler fn) {
    if (!st_) return;
    std::lock_guard<std::mutex> lk(st_->handler_mu);
    st_->handler = std::move(fn);
  }

  /// Close now (flush, fsync, checkpoint). Owners that outlive it then fail with
  /// KVH_E_CLOSED. A second close is KVH_E_CLOSED and does not reach the library.
  [[nodiscard]] Status try_close() {
    if (!st_) return Status::failure(KVH_E_CLOSED, "kvh::Tracer::close: empty tracer (moved-from or default)");
    Status s = st_->close();  // the C tracer is gone whatever close returned
    st_.reset();
    return s;
  }

  [[nodiscard]] Result<Buffer> try_allocate(const Alloc &a) {
    const kvh_alloc_desc d = a.capi();
    uint64_t h = 0;
    Status s = call("kvh::Tracer::allocate", [&](kvh_tracer *t) { return kvh_allocate(t, &d, &h); });
    if (!s) return s;
    return Buffer(st_, h);
  }
  [[nodiscard]] Result<Pool> try_register_pool(const PoolDesc &pd) {
    const kvh_pool_desc d = pd.capi();
    uint64_t h = 0;
    Status s = call("kvh::Tracer::register_pool", [&](kvh_tracer *t) { return kvh_pool_register(t, &d, &h); });
    if (!s) return s;
    return Pool(st_, h);
  }
  /// Sanitize many buffers in one pass; their coverages, in order.
  [[nodiscard]] Result<std::vector<double>> try_sanitize_many(span<const uint64_t> handles,
                                                              const SanitizeOptions &opts = {}) {
    const kvh_sanitize_opts o = opts.capi();
    std::vector<double> cov(handles.size(), 0.0);
    Status s = call("kvh::Tracer::sanitize_many", [&](kvh_tracer *t) {
      return kvh_sanitize_many(t, handles.data(), handles.size(), &o, cov.empty() ? nullptr : cov.data());
    });
    if (!s) return s;
    return cov;
  }
  /// Sanitize the given buffers (which must belong to this tracer) in one pass.
  [[nodiscard]] Result<std::vector<double>> try_sanitize_many(std::initializer_list<const Buffer *> bufs,
                                                              const SanitizeOptions &opts = {}) {
    std::vector<uint64_t> hs;
    hs.reserve(bufs.size());
    for (const Buffer *b : bufs) hs.push_back(b == nullptr ? 0 : b->handle());
    return try_sanitize_many(span<const uint64_t>(hs), opts);
  }
  /// The seed-compatible metrics JSON.
  [[nodiscard]] Result<std::string> try_metrics_json() {
    std::string out;
    Status s = call("kvh::Tracer::metrics_json", [&](kvh_tracer *t) {
      size_t need = 0;
      status_t r = kvh_metrics_json(t, nullptr, 0, &need);
      for (int attempt = 0; attempt < 4 && (r == KVH_OK || r == KVH_E_BUFFER_TOO_SMALL); ++attempt) {
        out.assign(need + 64, '\0');  // slack: metrics may grow between the calls
        size_t len = 0;
        r = kvh_metrics_json(t, &out[0], out.size(), &len);
        if (r == KVH_OK) {
          out.resize(len);
          return r;
        }
        need = len;
      }
      return r;
    });
    if (!s) return s;
    return out;
  }
  [[nodiscard]] Status try_export_metrics(const std::string &path) {
    return call("kvh::Tracer::export_metrics", [&](kvh_tracer *t) { return kvh_export_metrics(t, path.c_str()); });
  }
  [[nodiscard]] Status try_export_prometheus(const std::string &path) {
    return call("kvh::Tracer::export_prometheus",
                [&](kvh_tracer *t) { return kvh_export_prometheus(t, path.c_str()); });
  }
  /// Serve /metrics; the bound "host:port". Default: 127.0.0.1, port chosen.
  [[nodiscard]] Result<std::string> try_metrics_serve(zstring addr = "127.0.0.1:0") {
    char bound[256] = {0};
    Status s = call("kvh::Tracer::metrics_serve",
                    [&](kvh_tracer *t) { return kvh_metrics_serve(t, addr.c_str(), bound, sizeof bound); });
    if (!s) return s;
    return std::string(bound);
  }
  [[nodiscard]] Status try_metrics_stop() {
    return call("kvh::Tracer::metrics_stop", [&](kvh_tracer *t) { return kvh_metrics_stop(t); });
  }
  [[nodiscard]] Status try_checkpoint() {
    return call("kvh::Tracer::checkpoint", [&](kvh_tracer *t) { return kvh_checkpoint(t); });
  }
  [[nodiscard]] Status try_flush() {
    return call("kvh::Tracer::flush", [&](kvh_tracer *t) { return kvh_log_flush(t); });
  }

#if KVH_HAS_EXCEPTIONS
  static Tracer open(const Config &cfg = Config()) { return try_open(cfg).value(); }
  void close() { try_close().value(); }
  [[nodiscard]] Buffer allocate(const Alloc &a) { return try_allocate(a).value(); }
  [[nodiscard]] Pool register_pool(const PoolDesc &d) { return try_register_pool(d).value(); }
  std::vector<double> sanitize_many(span<const uint64_t> handles, const SanitizeOptions &opts = {}) {
    return try_sanitize_many(handles, opts).value();
  }
  std::vector<double> sanitize_many(std::initializer_list<const Buffer *> bufs, const SanitizeOptions &opts = {}) {
    return try_sanitize_many(bufs, opts).value();
  }
  std::string metrics_json() { return try_metrics_json().value(); }
  void export_metrics(const std::string &path) { try_export_metrics(path).value(); }
  void export_prometheus(const std::string &path) { try_export_prometheus(path).value(); }
  std::string metrics_serve(zstring addr = "127.0.0.1:0") { return try_metrics_serve(addr).value(); }
  void metrics_stop() { try_metrics_stop().value(); }
  void checkpoint() { try_checkpoint().value(); }
  void flush() { try_flush().value(); }
#endif

 private:
  explicit Tracer(detail::StatePtr st) noexcept : st_(std::move(st)) {}

  template <class F>
  Status call(const char *what, F &&f) {
    if (!st_) return Status::failure(KVH_E_CLOSED, std::string(what) + ": empty tracer (moved-from, default or closed)");
    return st_->call(what, std::forward<F>(f));
  }

  detail::StatePtr st_;
};

}  // namespace kvh

#endif  // KVHYGIENE_HPP
