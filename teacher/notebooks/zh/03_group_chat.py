# 第 3 个笔记本：一条消息让服务器端给每个在线的客户端各发一个数据报。
def broadcast_cost(clients, messages):
    return clients * messages
