// Common base of the asyncstate-* checks: the shared API vocabulary, the scope
// resolver, per-location de-duplication, C++-only activation, and the narrowing of
// the matchers' traversal to user code.
#pragma once

#include "clang-tidy/ClangTidyCheck.h"
#include "utils/AsyncScope.h"
#include "utils/Defaults.h"
#include "utils/UserCodeParents.h"

namespace clang::tidy::asyncstate {

class AsyncStateCheck : public ClangTidyCheck {
 public:
  AsyncStateCheck(StringRef Name, ClangTidyContext* Context)
      : ClangTidyCheck(Name, Context),
        TidyContext(Context),
        Names(Options),
        Resolver(Names),
        UserCodeOnly(isTrue(Options.getLocalOrGlobal("TraverseUserCodeOnly", defaults::TraverseUserCodeOnly))),
        TraversalScope(Names) {}

  bool isLanguageVersionSupported(const LangOptions& LangOpts) const override { return LangOpts.CPlusPlus; }
  void storeOptions(ClangTidyOptions::OptionMap& Opts) override {
    Names.store(Options, Opts);
    Options.store(Opts, "TraverseUserCodeOnly", UserCodeOnly ? "true" : "false");
  }
  void onStartOfTranslationUnit() override {
    UserCodeParents::instance().reset();
    Resolver.reset();
    Reported.reset();
  }

 protected:
  // Every check calls this first from registerMatchers(). clang-tidy's matchers share
  // one traversal of the whole translation unit: the standard library's and
  // asyncstate's headers with every template instantiation, most of the nodes and
  // none of them UDF code. The translation unit is the first node matched, so its
  // callback can narrow the traversal that follows to the top-level declarations in
  // user code (ASTContext::setTraversalScope, as clangd does for the main file). The
  // narrowing applies to all checks of the run; TraverseUserCodeOnly=false turns it off
  // for a run that also needs other checks to see library headers.
  void traverseUserCodeOnly(ast_matchers::MatchFinder* Finder) {
    if (UserCodeOnly) Finder->addMatcher(ast_matchers::translationUnitDecl(), &TraversalScope);
  }

  ClangTidyContext* const TidyContext;
  ApiNames Names;
  AsyncScopeResolver Resolver;
  ReportedOnce Reported;

 private:
  // clang-tidy's spelling of a boolean option (its own bool accessors are not exported
  // by the Debian package's static library).
  static bool isTrue(StringRef Value) { return !Value.equals_insensitive("false") && Value != "0"; }

  class UserCodeScope : public ast_matchers::MatchFinder::MatchCallback {
   public:
    explicit UserCodeScope(const ApiNames& Names) : Names(Names) {}
    void run(const ast_matchers::MatchFinder::MatchResult& Result) override {
      UserCodeParents::instance().restrictTraversal(*Result.Context, Names.IgnoredNamespaces);
    }
    StringRef getID() const override { return "asyncstate-user-code-scope"; }

   private:
    const ApiNames& Names;
  };

  const bool UserCodeOnly;
  UserCodeScope TraversalScope;
};

}  // namespace clang::tidy::asyncstate
