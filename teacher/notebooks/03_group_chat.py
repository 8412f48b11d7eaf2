# Notebook 3: one message makes the server send one datagram to each live client.
def broadcast_cost(clients, messages):
    return clients * messages
