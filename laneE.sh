source /work/exp/r6/common.sh
export PYTHONPATH=/work/exp/code5/src
stu stuEc-13 textcnn 13 --set distill.alpha=0.2 --set embeddings.init=minilm --set textcnn.embed_dim=384
stu stuEc-15 textcnn 15 --set distill.alpha=0.2 --set embeddings.init=minilm --set textcnn.embed_dim=384
