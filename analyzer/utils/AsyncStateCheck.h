// Common base of the asyncstate-* checks: the shared API vocabulary, the scope
// resolver, per-location de-duplication, and C++-only activation.
#pragma once

#include "clang-tidy/ClangTidyCheck.h"
#include "utils/AsyncScope.h"
#include "utils/UserCodeParents.h"

namespace clang::tidy::asyncstate {

class AsyncStateCheck : public ClangTidyCheck {
 public:
  AsyncStateCheck(StringRef Name, ClangTidyContext* Context)
      : ClangTidyCheck(Name, Context), TidyContext(Context), Names(Options), Resolver(Names) {}

  bool isLanguageVersionSupported(const LangOptions& LangOpts) const override { return LangOpts.CPlusPlus; }
  void storeOptions(ClangTidyOptions::OptionMap& Opts) override { Names.store(Options, Opts); }
  void onStartOfTranslationUnit() override {
    UserCodeParents::instance().reset();
    Resolver.reset();
    Reported.reset();
  }

 protected:
  ClangTidyContext* const TidyContext;
  ApiNames Names;
  AsyncScopeResolver Resolver;
  ReportedOnce Reported;
};

}  // namespace clang::tidy::asyncstate
