// What counts as "async UDF code", shared by every asyncstate-* check so that all
// of them agree on it and on the options that widen it for projects wrapping the API.
#pragma once

#include "clang-tidy/ClangTidyCheck.h"
#include "clang/AST/ASTContext.h"
#include "clang/AST/DeclCXX.h"
#include "clang/AST/ExprCXX.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/DenseSet.h"
#include "llvm/ADT/SmallVector.h"

#include <optional>
#include <string>
#include <vector>

namespace clang::tidy::asyncstate {

// The library vocabulary. Every entry is an option; the defaults
// (utils/Defaults.h) name asyncstate's own types, and wrapping projects append
// their own.
struct ApiNames {
  std::vector<std::string> UdfBaseClasses;
  std::vector<std::string> TaskTypes;
  std::vector<std::string> FutureTypes;
  std::vector<std::string> IteratorTypes;
  std::vector<std::string> ContinuationMethods;
  std::vector<std::string> ContinuationFunctions;
  std::vector<std::string> OffThreadCallees;
  std::vector<std::string> IgnoredNamespaces;

  explicit ApiNames(const ClangTidyCheck::OptionsView& Options);
  void store(ClangTidyCheck::OptionsView& Options, ClangTidyOptions::OptionMap& Opts) const;
};

enum class ScopeKind { None, UdfMember, TaskCoroutine, Continuation };

struct Scope {
  ScopeKind Kind = ScopeKind::None;
  // The UDF member function the code is in, for ScopeKind::UdfMember.
  const CXXMethodDecl* Member = nullptr;

  bool isAsync() const { return Kind != ScopeKind::None; }
  // Code that runs later, on the task thread, after some state request completed.
  bool runsAsContinuation() const { return Kind == ScopeKind::Continuation || Kind == ScopeKind::TaskCoroutine; }
};

bool isSameOrDerivedFrom(const CXXRecordDecl* Record, const std::vector<std::string>& Names);
// The class a type refers to through typedefs, aliases, references and pointers.
const CXXRecordDecl* pointeeRecord(QualType Type);
// The class of the object a member call is made on, as written (before the
// implicit conversion to a base class that declares the method).
const CXXRecordDecl* objectRecord(const CXXMemberCallExpr* Call);

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
  // A UDF class whose members issue async state requests, await, or chain continuations.
  bool usesAsyncState(const CXXRecordDecl* Record);
  bool isTaskCoroutine(const FunctionDecl* Function) const;
  bool isFutureClass(const CXXRecordDecl* Record) const;
  bool isInLibrary(const Decl* D) const;
  // f.thenApply(...) on a future or a state iterator, or a call to a function
  // listed in ContinuationFunctions.
  bool isContinuationCall(const CallExpr* Call) const;
  // The call the lambda is handed to as a continuation: directly, through a
  // local variable holding it, through a helper function that attaches it, or
  // returned by a factory whose result is attached. Null when the lambda is not
  // a continuation.
  const CallExpr* continuationCallOf(const LambdaExpr* Lambda, ASTContext& Ctx);
  // A class whose objects are handed to continuation calls: its operator() is a continuation.
  bool isContinuationFunctor(const CXXRecordDecl* Record, ASTContext& Ctx);
  // The lambda an argument expression evaluates to, if it is one (or a local
  // variable initialised with one).
  static const LambdaExpr* lambdaOf(const Expr* Argument);
  // True when the continuation chain holding Call is co_await-ed right away, so
  // the awaiting coroutine's frame outlives every continuation in it.
  bool isAwaitedImmediately(const Expr* Call, ASTContext& Ctx) const;
  // Code that never runs: inside decltype, typeof, sizeof, alignof, noexcept, an
  // unevaluated typeid or a requires-expression.
  bool isUnevaluated(const Stmt& S, ASTContext& Ctx) const;
  // The name a diagnostic gives the call a continuation is passed to.
  static std::string calleeName(const CallExpr* Call);
  // The node's parent in user code (utils/UserCodeParents.h).
  std::optional<DynTypedNode> parentOf(const DynTypedNode& Node, ASTContext& Ctx) const;
  template <class T>
  std::optional<DynTypedNode> parentOf(const T& Node, ASTContext& Ctx) const {
    return parentOf(DynTypedNode::create(Node), Ctx);
  }

 private:
  const CallExpr* callTakingAsArgument(const Expr* E, ASTContext& Ctx, unsigned HelperDepth);
  const CallExpr* continuationCallOfVariable(const VarDecl* Var, ASTContext& Ctx, unsigned HelperDepth);
  const CallExpr* helperAttaching(const FunctionDecl* Helper, unsigned Parameter, ASTContext& Ctx,
                                  unsigned HelperDepth);
  const CallExpr* factoryCallReturning(const LambdaExpr* Lambda, ASTContext& Ctx);
  bool runsOnAnotherThread(const LambdaExpr* Lambda, ASTContext& Ctx) const;
  void buildContinuationIndex(ASTContext& Ctx);

  using VarUses = llvm::DenseMap<const VarDecl*, llvm::SmallVector<const DeclRefExpr*, 2>>;
  const VarUses& usesIn(const Stmt* Body);

  const ApiNames& Names;
  llvm::DenseMap<const CXXRecordDecl*, bool> UdfClassCache;
  llvm::DenseMap<const CXXRecordDecl*, bool> AsyncUdfCache;
  llvm::DenseMap<const LambdaExpr*, const CallExpr*> ContinuationCache;
  llvm::DenseMap<std::pair<const FunctionDecl*, unsigned>, const CallExpr*> HelperCache;
  // Every local variable's uses, per function or lambda body, so resolving N
  // lambdas stored in locals costs one walk of the body, not N.
  llvm::DenseMap<const Stmt*, VarUses> UsesByBody;
  // Built on first need, from every continuation call of the translation unit.
  bool IndexBuilt = false;
  llvm::DenseSet<const CXXRecordDecl*> FunctorClasses;
  llvm::DenseMap<const FunctionDecl*, const CallExpr*> FactoryCalls;
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
