// What counts as "async UDF code", shared by every asyncstate-* check so that all
// five agree on it and on the options that widen it for projects wrapping the API.
#pragma once

#include "clang-tidy/ClangTidyCheck.h"
#include "clang/AST/ASTContext.h"
#include "clang/AST/DeclCXX.h"
#include "clang/AST/ExprCXX.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/DenseSet.h"

#include <string>
#include <vector>

namespace clang::tidy::asyncstate {

// A ';'-separated option value, as clang-tidy's own list options are written.
std::vector<std::string> splitList(StringRef Value);
std::string joinList(const std::vector<std::string>& Items);

// Class names are compared fully qualified without the leading "::", which is how
// NamedDecl::getQualifiedNameAsString spells them (template arguments excluded).
std::string normalizeName(StringRef Name);

// The library vocabulary. Every entry is an option; the defaults name asyncstate's
// own types, and wrapping projects append their own.
struct ApiNames {
  std::vector<std::string> UdfBaseClasses;
  std::vector<std::string> TaskTypes;
  std::vector<std::string> FutureTypes;
  std::vector<std::string> IteratorTypes;
  std::vector<std::string> ContinuationMethods;
  std::vector<std::string> IgnoredNamespaces;

  explicit ApiNames(const ClangTidyCheck::OptionsView& Options);
  void store(ClangTidyCheck::OptionsView& Options, ClangTidyOptions::OptionMap& Opts) const;
};

enum class ScopeKind { None, UdfMember, TaskCoroutine, Continuation };

struct Scope {
  ScopeKind Kind = ScopeKind::None;

  bool isAsync() const { return Kind != ScopeKind::None; }
  // Code that runs later, on the task thread, after some state request completed.
  bool runsAsContinuation() const { return Kind == ScopeKind::Continuation || Kind == ScopeKind::TaskCoroutine; }
};

bool isSameOrDerivedFrom(const CXXRecordDecl* Record, const std::vector<std::string>& Names);
// The class a type refers to through typedefs, aliases, references and pointers.
const CXXRecordDecl* pointeeRecord(QualType Type);

// Resolves scopes by walking the parent map upwards; results are cached per
// translation unit, so call reset() from onStartOfTranslationUnit.
class AsyncScopeResolver {
 public:
  explicit AsyncScopeResolver(const ApiNames& Names) : Names(Names) {}

  void reset();
  Scope classify(const DynTypedNode& Node, ASTContext& Ctx);
  template <class T>
  Scope classify(const T& Node, ASTContext& Ctx) {
    return classify(DynTypedNode::create(Node), Ctx);
  }

  bool isUdfClass(const CXXRecordDecl* Record);
  bool isTaskCoroutine(const FunctionDecl* Function) const;
  bool isFutureClass(const CXXRecordDecl* Record) const;
  bool isInLibrary(const Decl* D) const;
  // A member call like f.thenApply(...) on a future or a state iterator.
  bool isContinuationCall(const CallExpr* Call) const;
  // The call the lambda is handed to as a continuation, directly or through a
  // local variable holding it; null when the lambda is not a continuation.
  const CXXMemberCallExpr* continuationCallOf(const LambdaExpr* Lambda, ASTContext& Ctx);
  // The lambda an argument expression evaluates to, if it is one (or a local
  // variable initialised with one).
  static const LambdaExpr* lambdaOf(const Expr* Argument);
  // True when the continuation chain holding Call is co_await-ed right away, so
  // the awaiting coroutine's frame outlives every continuation in it.
  static bool isAwaitedImmediately(const CXXMemberCallExpr* Call, ASTContext& Ctx);

 private:
  const CXXMemberCallExpr* callTakingAsArgument(const Expr* E, ASTContext& Ctx) const;
  const CXXMemberCallExpr* continuationCallOfVariable(const VarDecl* Var, ASTContext& Ctx);

  const ApiNames& Names;
  llvm::DenseMap<const CXXRecordDecl*, bool> UdfClassCache;
  llvm::DenseMap<const LambdaExpr*, const CXXMemberCallExpr*> ContinuationCache;
};

// One diagnostic per source location and message, however many template
// instantiations reach it.
class ReportedOnce {
 public:
  void reset() { Seen.clear(); }
  bool firstTime(SourceLocation Loc, unsigned Kind) { return Seen.insert({Loc.getRawEncoding(), Kind}).second; }

 private:
  llvm::DenseSet<std::pair<unsigned, unsigned>> Seen;
};

}  // namespace clang::tidy::asyncstate
