#!/bin/sh
# The scheduled retraining (k8s/README.md, "Scheduled retraining"): `retrain` each model named in
# $RETRAIN_MODELS, then `gc` each so that versions do not pile up in the store.
#
#   INDUCTIVE_STORE  the store the server reads: /models (the shared volume) or s3://bucket/prefix
#   RETRAIN_MODELS   model names, separated by spaces
#   GC_KEEP          newest versions gc keeps per model (default 5; aliases and canaries are
#                    always kept by gc itself)
#   RETRAIN_DATA     optional: new labelled shards for model M are read from $RETRAIN_DATA/M
#   RETRAIN_EPOCHS   optional: overrides each recipe's epochs
#
# retrain's exit status: 0 a new version was published, 3 the champion was kept (the candidate was
# not better, or nothing changed): both are success. Anything else is a failure of that model.
# Every model is still tried and gc still runs, so one broken model neither blocks the others nor
# lets versions pile up; the Job then ends failed (exit 1), which is what alerts watch.
set -u

if [ -z "${INDUCTIVE_STORE:-}" ] || [ -z "${RETRAIN_MODELS:-}" ]; then
    echo "retrain.sh: INDUCTIVE_STORE and RETRAIN_MODELS must both be set" >&2
    exit 1
fi
keep="${GC_KEEP:-5}"
case "$keep" in
    '' | *[!0-9]*)
        echo "retrain.sh: GC_KEEP must be a whole number, not '$keep'" >&2
        exit 1
        ;;
esac

failed=""
for model in $RETRAIN_MODELS; do
    set -- retrain --model "$model" --store "$INDUCTIVE_STORE"
    if [ -n "${RETRAIN_DATA:-}" ]; then
        set -- "$@" --data "${RETRAIN_DATA%/}/$model"
    fi
    if [ -n "${RETRAIN_EPOCHS:-}" ]; then
        set -- "$@" --epochs "$RETRAIN_EPOCHS"
    fi
    echo "retrain.sh: python -m training $*"
    python -m training "$@"
    status=$?
    case "$status" in
        0) echo "retrain.sh: $model: new version published" ;;
        3) echo "retrain.sh: $model: champion kept, nothing published" ;;
        *)
            echo "retrain.sh: $model: retrain failed (exit $status)" >&2
            failed="$failed $model"
            ;;
    esac
done

for model in $RETRAIN_MODELS; do
    echo "retrain.sh: python -m model_store --store $INDUCTIVE_STORE gc $model --keep $keep"
    if ! python -m model_store --store "$INDUCTIVE_STORE" gc "$model" --keep "$keep"; then
        echo "retrain.sh: $model: gc failed" >&2
        failed="$failed gc:$model"
    fi
done

if [ -n "$failed" ]; then
    echo "retrain.sh: failed:$failed" >&2
    exit 1
fi
echo "retrain.sh: done"
