// Registers the asyncstate-* checks with clang-tidy. Linked into both the plugin
// and the asyncstate-tidy driver; the static registrar below is what -load finds.
#include "BlockingCallbackCheck.h"
#include "DanglingCaptureCheck.h"
#include "DanglingCoroutineReferenceCheck.h"
#include "MemberScratchAcrossSuspensionCheck.h"
#include "MixedStateAccessCheck.h"
#include "RawFutureCheck.h"
#include "SwallowedExceptionCheck.h"
#include "SyncStateAccessCheck.h"

#include "clang-tidy/ClangTidyModule.h"
#include "clang-tidy/ClangTidyModuleRegistry.h"

namespace clang::tidy::asyncstate {

class AsyncStateModule : public ClangTidyModule {
 public:
  void addCheckFactories(ClangTidyCheckFactories& Factories) override {
    Factories.registerCheck<SyncStateAccessCheck>("asyncstate-sync-state-access");
    Factories.registerCheck<RawFutureCheck>("asyncstate-raw-future");
    Factories.registerCheck<SwallowedExceptionCheck>("asyncstate-swallowed-exception");
    Factories.registerCheck<DanglingCaptureCheck>("asyncstate-dangling-capture");
    Factories.registerCheck<BlockingCallbackCheck>("asyncstate-blocking-callback");
    Factories.registerCheck<DanglingCoroutineReferenceCheck>("asyncstate-dangling-coroutine-reference");
    Factories.registerCheck<MemberScratchAcrossSuspensionCheck>("asyncstate-member-scratch-across-suspension");
    Factories.registerCheck<MixedStateAccessCheck>("asyncstate-mixed-state-access");
  }
};

static ClangTidyModuleRegistry::Add<AsyncStateModule> Registration("asyncstate-module",
                                                                   "Checks for asynchronous keyed-state UDF code.");

}  // namespace clang::tidy::asyncstate
