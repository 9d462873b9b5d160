#include "MemberScratchAcrossSuspensionCheck.h"

#include "utils/Defaults.h"
#include "utils/Matching.h"
#include "utils/UdfClasses.h"

#include "clang/AST/ASTContext.h"
#include "clang/AST/RecursiveASTVisitor.h"
#include "clang/AST/StmtCXX.h"
#include "clang/ASTMatchers/ASTMatchFinder.h"
#include "llvm/ADT/DenseSet.h"
#include "llvm/ADT/STLExtras.h"

using namespace clang::ast_matchers;

namespace clang::tidy::asyncstate {

namespace {

constexpr unsigned ReadKind = 0;
// Continuations nest (a continuation attaching another); deeper chains are not followed.
constexpr unsigned MaxLambdaDepth = 16;

// `this->m` (or `m`), possibly reached through `.` members of it: `pending_.user`
// writes `pending_`. `->` leaves the member: `cursor_->x` writes the pointee.
const MemberExpr* thisMember(const Expr* E) {
  const auto* Member = dyn_cast_or_null<MemberExpr>(E ? E->IgnoreParenImpCasts() : nullptr);
  while (Member) {
    const Expr* Base = Member->getBase()->IgnoreParenImpCasts();
    if (isa<CXXThisExpr>(Base)) return isa<FieldDecl>(Member->getMemberDecl()) ? Member : nullptr;
    if (Member->isArrow()) return nullptr;
    Member = dyn_cast<MemberExpr>(Base);
  }
  return nullptr;
}

struct Event {
  enum Kind { Write, Read, Suspend, Lambda } What;
  // Where the event takes effect, for ordering; Written is where a diagnostic points
  // (the member a write names, the `co_await` keyword).
  SourceLocation Loc;
  SourceLocation Written;
  const FieldDecl* Field = nullptr;
  const LambdaExpr* Closure = nullptr;
};

// One walk of a function (or lambda) body: the tracked members it writes and
// reads, where it suspends, and the lambdas it creates (whose bodies are walked
// on their own). Nested lambda bodies are not entered.
class EventCollector : public RecursiveASTVisitor<EventCollector> {
  using Base = RecursiveASTVisitor<EventCollector>;

 public:
  EventCollector(MemberScratchAcrossSuspensionCheck& Check, const std::vector<std::string>& ResetMethods)
      : Check(Check), ResetMethods(ResetMethods) {}

  std::vector<Event> Events;

  bool TraverseLambdaExpr(LambdaExpr* Lambda) {
    // Init-captures are evaluated where the lambda is created.
    for (const LambdaCapture& Capture : Lambda->captures())
      if (Capture.capturesVariable())
        if (const auto* Var = dyn_cast<VarDecl>(Capture.getCapturedVar()); Var && Var->isInitCapture())
          TraverseStmt(const_cast<Expr*>(Var->getInit()));
    Events.push_back({Event::Lambda, Lambda->getBeginLoc(), {}, nullptr, Lambda});
    return true;
  }
  bool TraverseCXXRecordDecl(CXXRecordDecl*) { return true; }

  // The record suspends once the operand is evaluated: `co_await s->asyncGet(key_)`
  // reads key_ before it.
  bool VisitCoawaitExpr(CoawaitExpr* Await) { return suspend(Await); }
  bool VisitDependentCoawaitExpr(DependentCoawaitExpr* Await) { return suspend(Await); }
  bool VisitCoyieldExpr(CoyieldExpr* Yield) { return suspend(Yield); }

  bool VisitBinaryOperator(BinaryOperator* Op) {
    if (Op->getOpcode() == BO_Assign) return write(Op->getLHS(), Op->getEndLoc());
    if (Op->isCompoundAssignmentOp()) return accumulate(Op->getLHS());
    return true;
  }
  bool VisitUnaryOperator(UnaryOperator* Op) {
    return Op->isIncrementDecrementOp() ? accumulate(Op->getSubExpr()) : true;
  }
  bool VisitCXXOperatorCallExpr(CXXOperatorCallExpr* Call) {
    if (Call->getNumArgs() == 0) return true;
    const OverloadedOperatorKind Op = Call->getOperator();
    if (Op == OO_Equal) return write(Call->getArg(0), Call->getEndLoc());
    if (Op == OO_PlusEqual || Op == OO_MinusEqual || Op == OO_StarEqual || Op == OO_SlashEqual ||
        Op == OO_PercentEqual || Op == OO_PipeEqual || Op == OO_AmpEqual || Op == OO_CaretEqual ||
        Op == OO_LessLessEqual || Op == OO_GreaterGreaterEqual || Op == OO_PlusPlus || Op == OO_MinusMinus)
      return accumulate(Call->getArg(0));
    return true;
  }
  bool VisitCXXMemberCallExpr(CXXMemberCallExpr* Call) {
    const CXXMethodDecl* Method = Call->getMethodDecl();
    if (Method && Method->getDeclName().isIdentifier() && contains(ResetMethods, Method->getName()))
      return write(Call->getImplicitObjectArgument(), Call->getEndLoc());
    return true;
  }
  bool VisitMemberExpr(MemberExpr* Member) {
    if (NotRead.contains(Member) || !isa<CXXThisExpr>(Member->getBase()->IgnoreParenImpCasts())) return true;
    const auto* Field = dyn_cast<FieldDecl>(Member->getMemberDecl());
    if (Field && Check.isTracked(Field)) Events.push_back({Event::Read, Member->getMemberLoc(), {}, Field, nullptr});
    return true;
  }

 private:
  bool suspend(const Expr* Suspension) {
    Events.push_back({Event::Suspend, Suspension->getEndLoc(), Suspension->getBeginLoc(), nullptr, nullptr});
    return true;
  }
  // The write takes effect once its right-hand side is evaluated: at the end of the
  // expression, so `scratch_ = co_await f();` writes after the suspension.
  bool write(const Expr* Target, SourceLocation End) {
    const MemberExpr* Member = thisMember(Target);
    if (!Member) return true;
    NotRead.insert(Member);
    const auto* Field = cast<FieldDecl>(Member->getMemberDecl());
    if (Check.isTracked(Field)) Events.push_back({Event::Write, End, Member->getMemberLoc(), Field, nullptr});
    return true;
  }
  // `++count_`, `sum_ += x`: a running value that spans records by design, not scratch.
  bool accumulate(const Expr* Target) {
    if (const MemberExpr* Member = thisMember(Target)) NotRead.insert(Member);
    return true;
  }

  MemberScratchAcrossSuspensionCheck& Check;
  const std::vector<std::string>& ResetMethods;
  llvm::DenseSet<const MemberExpr*> NotRead;
};

const Stmt* functionBody(const FunctionDecl* Function) {
  const Stmt* Body = Function->getBody();
  if (const auto* Coroutine = dyn_cast_or_null<CoroutineBodyStmt>(Body)) return Coroutine->getBody();
  return Body;
}

bool capturesThisByReference(const LambdaExpr* Lambda) {
  return llvm::any_of(Lambda->captures(), [](const LambdaCapture& Capture) {
    return Capture.capturesThis() && Capture.getCaptureKind() == LCK_This;
  });
}

}  // namespace

MemberScratchAcrossSuspensionCheck::MemberScratchAcrossSuspensionCheck(StringRef Name, ClangTidyContext* Context)
    : AsyncStateCheck(Name, Context),
      StateTypes(parseQualifiedNames(Options.getLocalOrGlobal("StateTypes", defaults::StateTypes))),
      IgnoredMemberTypes(parseQualifiedNames(Options.get("IgnoredMemberTypes", defaults::IgnoredMemberTypes))),
      ScratchResetMethods(parseList(Options.get("ScratchResetMethods", defaults::ScratchResetMethods))) {}

void MemberScratchAcrossSuspensionCheck::storeOptions(ClangTidyOptions::OptionMap& Opts) {
  AsyncStateCheck::storeOptions(Opts);
  Options.store(Opts, "StateTypes", serializeQualifiedNames(StateTypes));
  Options.store(Opts, "IgnoredMemberTypes", serializeQualifiedNames(IgnoredMemberTypes));
  Options.store(Opts, "ScratchResetMethods", serializeList(ScratchResetMethods));
}

void MemberScratchAcrossSuspensionCheck::registerMatchers(MatchFinder* Finder) {
  traverseUserCodeOnly(Finder);
  Finder->addMatcher(translationUnitDecl().bind("tu"), this);
}

bool MemberScratchAcrossSuspensionCheck::isTracked(const FieldDecl* Field) {
  auto [It, Inserted] = Tracked.try_emplace(Field, false);
  if (!Inserted) return It->second;
  const QualType Type = Field->getType();
  const CXXRecordDecl* Record = pointeeRecord(Type);
  It->second = !Type.isConstQualified() && !Type.getNonReferenceType().isConstQualified() &&
               !isSameOrDerivedFrom(Record, StateTypes) && !isSameOrDerivedFrom(Record, IgnoredMemberTypes);
  return It->second;
}

void MemberScratchAcrossSuspensionCheck::check(const MatchFinder::MatchResult& Result) {
  ASTContext& Ctx = *Result.Context;
  forEachUdfClass(Ctx, Resolver, Names, [&](const CXXRecordDecl* Record) {
    for (const CXXMethodDecl* Method : Record->methods()) {
      if (isa<CXXConstructorDecl, CXXDestructorDecl>(Method) || Method->isStatic()) continue;
      const FunctionDecl* Definition = Method->getDefinition();
      const Stmt* Body = Definition ? functionBody(Definition) : nullptr;
      if (Body) analyzeBody(Body, Body->getSourceRange(), PendingWrites(), Ctx, 0);
    }
  });
}

// Replays the body's events in source order. A write followed by a suspension (or
// inherited from the code that attached this continuation) is pending; a read of
// the member while its last write is pending sees whatever another record wrote.
void MemberScratchAcrossSuspensionCheck::analyzeBody(const Stmt* Body, SourceRange Range, PendingWrites Inherited,
                                                     ASTContext& Ctx, unsigned Depth) {
  EventCollector Collector(*this, ScratchResetMethods);
  Collector.TraverseStmt(const_cast<Stmt*>(Body));
  std::vector<Event>& Events = Collector.Events;
  const SourceManager& SM = Ctx.getSourceManager();

  // A lambda stored in a local and attached later runs after the attaching call:
  // it sees the writes made up to that call.
  llvm::DenseMap<const LambdaExpr*, const CallExpr*> Attached;
  for (Event& E : Events) {
    if (E.What != Event::Lambda) continue;
    const CallExpr* Call = Resolver.continuationCallOf(E.Closure, Ctx);
    Attached[E.Closure] = Call;
    if (Call && SM.isBeforeInTranslationUnit(E.Loc, Call->getBeginLoc()) &&
        SM.isBeforeInTranslationUnit(Call->getBeginLoc(), Range.getEnd()))
      E.Loc = Call->getBeginLoc();
  }
  // At one location (`scratch_ = co_await f()` ends where the co_await ends) the
  // suspension comes first: the write takes the value the record resumed with.
  // Otherwise events keep the order the walk found them in.
  std::vector<unsigned> Order(Events.size());
  for (unsigned I = 0; I < Order.size(); ++I) Order[I] = I;
  llvm::sort(Order, [&](unsigned I, unsigned J) {
    const Event& A = Events[I];
    const Event& B = Events[J];
    if (A.Loc != B.Loc) return SM.isBeforeInTranslationUnit(A.Loc, B.Loc);
    const bool ASuspends = A.What == Event::Suspend, BSuspends = B.What == Event::Suspend;
    return ASuspends != BSuspends ? ASuspends : I < J;
  });
  std::vector<Event> Sorted;
  Sorted.reserve(Events.size());
  for (unsigned I : Order) Sorted.push_back(Events[I]);
  Events = std::move(Sorted);

  // A continuation runs after the whole synchronous part of the record: a write
  // made after attaching it is clobbered by the next records just as well.
  PendingWrites LaterWrites;
  for (const Event& E : Events)
    if (E.What == Event::Write) LaterWrites.try_emplace(E.Field, PendingWrite{E.Written, {}, false});

  PendingWrites Last = std::move(Inherited);
  llvm::DenseMap<const FieldDecl*, bool> Crossed;
  for (const auto& [Field, Pending] : Last) Crossed[Field] = true;
  llvm::DenseSet<const FieldDecl*> ReportedHere;
  for (const Event& E : Events) {
    switch (E.What) {
      case Event::Write:
        Last[E.Field] = {E.Written, {}, false};
        Crossed[E.Field] = false;
        break;
      case Event::Suspend:
        for (auto& [Field, Pending] : Last)
          if (!Crossed[Field]) {
            Crossed[Field] = true;
            Pending.Boundary = E.Written;
            Pending.AcrossContinuation = false;
          }
        break;
      case Event::Read: {
        auto It = Last.find(E.Field);
        if (It == Last.end() || !Crossed[E.Field] || !ReportedHere.insert(E.Field).second) break;
        if (!Reported.firstTime(E.Loc, ReadKind)) break;
        diag(E.Loc,
             "member %0 carries a per-record value across an asynchronous boundary; records of other keys run "
             "in between and may overwrite it: keep per-record values in locals (captured by value) or in keyed "
             "state")
            << E.Field;
        diag(It->second.Write, "%0 is written here", DiagnosticIDs::Note) << E.Field;
        diag(It->second.Boundary,
             It->second.AcrossContinuation
                 ? "the continuation reading it is attached here and runs after the record has let others run"
                 : "the record suspends here and other records run",
             DiagnosticIDs::Note);
        break;
      }
      case Event::Lambda: {
        if (Depth >= MaxLambdaDepth) break;
        const LambdaExpr* Lambda = E.Closure;
        const CallExpr* Call = Attached.lookup(Lambda);
        PendingWrites ForLambda;
        // [*this] reads a copy taken when the continuation was made: nothing to clobber.
        if (Call && capturesThisByReference(Lambda)) {
          for (const auto& [Field, Pending] : Last)
            ForLambda[Field] = Crossed[Field] ? Pending : PendingWrite{Pending.Write, Call->getExprLoc(), true};
          for (const auto& [Field, Later] : LaterWrites)
            ForLambda.try_emplace(Field, PendingWrite{Later.Write, Call->getExprLoc(), true});
        }
        const Stmt* LambdaBody = Lambda->getBody();
        analyzeBody(LambdaBody, LambdaBody->getSourceRange(), std::move(ForLambda), Ctx, Depth + 1);
        break;
      }
    }
  }
}

}  // namespace clang::tidy::asyncstate
