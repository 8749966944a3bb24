"""Runs tests/gpu/test_*.py without pytest (GPU machines may lack it).
Exit status 1 if any test failed; skips are reported, not failures."""
import importlib
import os
import sys
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def main():
    failed = passed = skipped = 0
    # KVH_GPU_REQUIRE=name,name: those tests must run (skipping fails them).
    required = set(filter(None, os.environ.get("KVH_GPU_REQUIRE", "").split(",")))
    for mod in ("test_driver_gpu", "test_torch_gpu"):
        m = importlib.import_module(mod)
        for name in sorted(n for n in dir(m) if n.startswith("test_")):
            try:
                getattr(m, name)()
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException as e:  # noqa: BLE001 (pytest's Skipped is a BaseException)
                if type(e).__name__ in ("Skipped", "Skip"):
                    if name in required:
                        failed += 1
                        print(f"FAIL {mod}.{name}: skipped but required by KVH_GPU_REQUIRE: {e}")
                        continue
                    skipped += 1
                    print(f"SKIP {mod}.{name}: {e}")
                    continue
                failed += 1
                print(f"FAIL {mod}.{name}")
                traceback.print_exc()
                continue
            passed += 1
            print(f"PASS {mod}.{name}")
    print(f"{passed} passed, {failed} failed, {skipped} skipped")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
