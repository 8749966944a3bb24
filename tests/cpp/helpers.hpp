// Shared helpers for the kvhygiene C++ binding tests.
#pragma once

#include <kvhygiene.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

namespace kvhtest {

// A fresh temporary directory, removed on destruction.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "kvh-cpp-XXXXXX").string();
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    const char *p = ::mkdtemp(buf.data());
    if (p == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = p;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir &) = delete;
  TempDir &operator=(const TempDir &) = delete;
  const std::string &path() const { return path_; }
  std::string file(const std::string &name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

inline const char *kTestKey = "cpp-test-key";

// Every setting the tests depend on is given in code, so the seed's environment
// variables (KV_*, FORENSIC_HMAC_SECRET) cannot change the outcome.
inline kvh::Config test_config(const std::string &log_path) {
  return kvh::Config()
      .log_path(log_path)
      .hmac_key(kTestKey)
      .coverage_threshold(99.9)
      .double_pass_default(false)
      .verify_samples_default(8)
      .verify_default(kvh::VerifyMode::full)
      .default_max_reuse(-1)
      .no_default_ttl()
      .ttl_mode(kvh::TtlMode::from_alloc)
      .fsync_policy(kvh::FsyncPolicy::none);
}

inline std::string read_file(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

inline bool all_zero(const void *p, size_t n) {
  const auto *b = static_cast<const unsigned char *>(p);
  return std::all_of(b, b + n, [](unsigned char c) { return c == 0; });
}

// Collects failures reported by destructors.
struct FailureLog {
  std::mutex mu;
  std::vector<kvh::Failure> failures;
  kvh::FailureHandler handler() {
    return [this](const kvh::Failure &f) {
      std::lock_guard<std::mutex> lk(mu);
      failures.push_back(f);
    };
  }
  size_t size() {
    std::lock_guard<std::mutex> lk(mu);
    return failures.size();
  }
};

// Restores the process-wide failure handler at scope exit.
class GlobalHandlerGuard {
 public:
  explicit GlobalHandlerGuard(kvh::FailureHandler fn) : old_(kvh::set_failure_handler(std::move(fn))) {}
  ~GlobalHandlerGuard() { kvh::set_failure_handler(std::move(old_)); }

 private:
  kvh::FailureHandler old_;
};

// A state read through the raw C API.
inline kvh_status raw_state(kvh_tracer *t, uint64_t h, int32_t *state) {
  kvh_buffer_info bi{};
  bi.struct_size = sizeof bi;
  kvh_status st = kvh_buffer_info_get(t, h, &bi);
  if (st == KVH_OK) *state = bi.state;
  return st;
}

inline bool stale_status(kvh_status st) { return st == KVH_E_FREED || st == KVH_E_UNKNOWN_HANDLE; }

}  // namespace kvhtest
